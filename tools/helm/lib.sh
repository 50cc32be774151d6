# Helpers of check.sh and gateway.sh (sourced; they set otelcol and scratch).

fail() { echo "helm-check: FAIL: $*" >&2; exit 1; }

validate() {
	"$otelcol" validate --config="$1" || fail "$2 does not validate"
	echo "helm-check: ok: $2 validates"
}

# Prints the block scalar under "  <key>: |" (a ConfigMap data key) without its indentation.
block() {
	awk -v key="  $1: |" '
		$0 == key { inside = 1; next }
		inside && /^    / { print substr($0, 5); next }
		inside && /^$/ { print; next }
		inside { exit }' "$2"
}

# require FILE WHAT LINE...: every LINE occurs in FILE (rendered YAML, described as WHAT).
require() {
	local file=$1 what=$2
	shift 2
	for want in "$@"; do
		grep -qF -- "$want" "$file" || fail "$what lacks '$want'"
	done
}
