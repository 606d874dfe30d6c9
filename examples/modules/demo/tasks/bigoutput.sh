#!/bin/sh
# Prints PT_kib KiB of text, then a marker line.
n=0
line=$(printf '%063d' 0)
while [ "$n" -lt "$((PT_kib * 16))" ]; do
	echo "$line"
	n=$((n + 1))
done
echo "END-OF-OUTPUT"
