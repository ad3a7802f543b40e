# bash completion for semcachefs and semcachefs-top (installed by meson
# into bash-completion's completions directory).
#
# Nothing is copied here: the -o names (and the choices of NAME=a|b) come
# from `semcachefs --help` and the policy keys from `semcachefs
# --policy-keys`, both run when completing, so the completion always
# matches the binary being completed (build/fs/semcachefs as well as the
# installed one). Works with or without the bash-completion package.

# _semcachefs_bin WORD0: the semcachefs binary that goes with the command
# being completed (semcachefs itself, or the one beside semcachefs-top)
_semcachefs_bin() {
	local cmd=$1
	cmd=${cmd/#\~/$HOME}
	case $cmd in
	*semcachefs-top) cmd=${cmd%-top} ;;
	esac
	if [[ $cmd == */* ]]; then
		[[ -x $cmd ]] && { printf '%s\n' "$cmd"; return 0; }
		cmd=semcachefs
	fi
	command -v "$cmd" 2>/dev/null || command -v semcachefs 2>/dev/null
}

# _semcachefs_o_lines BIN: "name" or "name=" or "name=a|b" per -o option
_semcachefs_o_lines() {
	"$1" --help 2>/dev/null | sed -n 's/^[[:space:]]*-o \([][a-z_]*\)\(=[^[:space:]]*\)\{0,1\}.*/\1\2/p' |
		sed -e 's/^\[no\]\(.*\)/\1\nno\1/'
}

# _semcachefs_policy_keys BIN: the policy.yaml keys, one a line
_semcachefs_policy_keys() {
	"$1" --policy-keys 2>/dev/null | sed -n 's/^| `\([a-z0-9_.]*\)` |.*/\1/p'
}

# _semcachefs_o BIN CUR: COMPREPLY for the argument of -o (a,b,c lists too)
_semcachefs_o() {
	local bin=$1 cur=$2 head= word line name value choices=() names=()
	if [[ $cur == *,* ]]; then
		head=${cur%,*},
		word=${cur##*,}
	else
		word=$cur
	fi
	if [[ $word == *=* ]]; then
		name=${word%%=*}
		value=${word#*=}
		while IFS= read -r line; do
			[[ $line == "$name="*"|"* ]] || continue
			IFS='|' read -r -a choices <<<"${line#*=}"
		done < <(_semcachefs_o_lines "$bin")
		if ((${#choices[@]})); then
			COMPREPLY=($(compgen -P "$head$name=" -W "${choices[*]}" -- "$value"))
		else
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -P "$head$name=" -f -- "$value")
		fi
		return 0
	fi
	while IFS= read -r line; do
		[[ $line == *=* ]] && names+=("${line%%=*}=") || names+=("$line")
	done < <(_semcachefs_o_lines "$bin")
	COMPREPLY=($(compgen -P "$head" -W "${names[*]}" -- "$word"))
	# a name that takes a value: no space after the '='
	[[ ${COMPREPLY[0]-} == *= ]] && compopt -o nospace 2>/dev/null
	return 0
}

_semcachefs() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} bin
	COMPREPLY=()
	bin=$(_semcachefs_bin "${COMP_WORDS[0]}") || return 0
	case $prev in
	-o)
		_semcachefs_o "$bin" "$cur"
		return 0
		;;
	esac
	if [[ $cur == -o?* ]]; then
		_semcachefs_o "$bin" "${cur#-o}"
		COMPREPLY=("${COMPREPLY[@]/#/-o}")
		return 0
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "-o -f -d -s -h --help -V --version --policy-keys" -- "$cur"))
		return 0
	fi
	compopt -o filenames 2>/dev/null
	mapfile -t COMPREPLY < <(compgen -d -- "$cur") # names with spaces stay whole
}

_semcachefs_top() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} bin
	COMPREPLY=()
	case $prev in
	-k | --key)
		bin=$(_semcachefs_bin "${COMP_WORDS[0]}") || return 0
		COMPREPLY=($(compgen -W "$(_semcachefs_policy_keys "$bin")" -- "$cur"))
		return 0
		;;
	-i | --interval)
		return 0
		;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "-1 --once -i --interval -k --key -h --help" -- "$cur"))
		return 0
	fi
	compopt -o filenames 2>/dev/null
	mapfile -t COMPREPLY < <(compgen -d -- "$cur") # names with spaces stay whole
}

complete -F _semcachefs semcachefs
complete -F _semcachefs_top semcachefs-top
