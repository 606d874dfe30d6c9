# Shared shell functions for demo tasks; sourced, not run.

# json_str prints $1 escaped for use inside a JSON string: control characters other than
# newline are dropped, \ and " are escaped, newlines become \n.
json_str() {
  printf '%s' "$1" | tr -d '\000-\010\011\013-\037' |
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' |
    awk 'NR > 1 { printf "%s", "\\n" } { printf "%s", $0 }'
}

# lib_version names this library.
lib_version() {
  printf '%s' "demo/files/lib.sh 1"
}
