#!/bin/sh
# forgelike::platform, shell implementation.
printf '{"implementation":"shell","task":"%s"}\n' "${PT__task:-}"
