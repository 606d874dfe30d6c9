#!/bin/sh
# forgelike::internal: a private task (hidden from listings, runnable by name).
printf '{"private_task":"ran","task":"%s"}\n' "${PT__task:-}"
