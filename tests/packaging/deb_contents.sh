#!/usr/bin/env bash
# packaging_deb_contents: the .deb cpack makes declares its dependencies, holds the binary,
# the man page, the bash completion and the docs (and nothing else), and each works as
# extracted: the binary runs, the page renders without warnings, the completion completes.
# Arguments: BUILD_DIR SOURCE_DIR VERSION.
set -euo pipefail
source "$(dirname "$0")/common.sh"

deb=$(build_deb)
echo "built $(basename "$deb")"

# --- control fields ----------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == pycell ]] || fail "Package is '$(field Package)', not pycell"
[[ $(field Version) == "$version" ]] || fail "Version is '$(field Version)', not $version"
[[ -n $(field Maintainer) && -n $(field Description) ]] || fail "no Maintainer or Description"
depends=$(field Depends)
echo "Depends: $depends"
for package in libseccomp2 python3 libc6; do
  [[ ", $depends," =~ ,\ $package[\ ,] ]] || fail "Depends does not name $package: $depends"
done
recommends=$(field Recommends)
echo "Recommends: $recommends"
[[ $recommends == "python3-numpy, python3-pandas, python3-matplotlib, nodejs, slirp4netns" ]] ||
  fail "Recommends is not numpy, pandas, matplotlib, nodejs, slirp4netns: $recommends"
dpkg-deb -I "$deb" >/dev/null || fail "dpkg-deb -I cannot read the package"

# --- files: exactly these (no test programs) ---------------------------------------------
doc=/usr/share/doc/pycell
{
  printf '%s\n' /usr/bin/pycell /usr/share/man/man1/pycell.1.gz \
    /usr/share/bash-completion/completions/pycell \
    $doc/README.md $doc/PROTOCOL.md $doc/DESIGN.md
  (cd "$source/schemas" && find . -type f | sed "s|^\.|$doc/schemas|")
} | sort >"$scratch/expected"
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' | sort >"$scratch/files"
if ! diff -u "$scratch/expected" "$scratch/files"; then
  fail "the package's files (+) are not the expected ones (-)"
fi
dpkg-deb -c "$deb" | awk '$1 !~ /^-rw-r--r--|^-rwxr-xr-x|^drwxr-xr-x/ {bad=1; print} END {exit bad}' ||
  fail "entries above have unusual permissions"
dpkg-deb -c "$deb" | awk '$2 != "root/root" {bad=1; print} END {exit bad}' || fail "entries above are not root's"

# --- the extracted binary ------------------------------------------------------------------
root=$scratch/root
dpkg-deb -x "$deb" "$root"
pycell=$root/usr/bin/pycell
"$pycell" --version | tee "$scratch/version"
grep -qF "$version" "$scratch/version" || fail "pycell --version does not print $version"

# --- the man page --------------------------------------------------------------------------
page=$root/usr/share/man/man1/pycell.1.gz
gzip -t "$page" || fail "the man page is not gzip"
zcat "$page" | groff -man -Tutf8 -ww -z 2>"$scratch/groff.err" || true
[[ ! -s $scratch/groff.err ]] && echo "groff -ww: no warnings" || { cat "$scratch/groff.err" >&2; fail "groff warns about the man page"; }
LC_ALL=C.UTF-8 MANWIDTH=80 MAN_KEEP_FORMATTING= man --warnings -E UTF-8 -l "$page" >"$scratch/man.txt" 2>"$scratch/man.err" ||
  { cat "$scratch/man.err" >&2; fail "man -l cannot show the page"; }
[[ ! -s $scratch/man.err ]] && echo "man --warnings: no warnings" || { cat "$scratch/man.err" >&2; fail "man --warnings warns about the page"; }
for heading in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS 'EXIT STATUS' FILES 'SEE ALSO'; do
  grep -qx "$heading" "$scratch/man.txt" || fail "the page has no section $heading"
done
for command in serve mcp run check; do
  grep -qE "^   $command\$" "$scratch/man.txt" || fail "COMMANDS has no $command"
  grep -qE "^   pycell $command\$" "$scratch/man.txt" || fail "OPTIONS has no pycell $command"
  # Every flag the binary's own help lists is in the page (the same README text).
  while read -r flag; do
    grep -qF -- "$flag" "$scratch/man.txt" || fail "the page does not mention $flag of $command"
  done < <(help_flags "$pycell" "$command")
done
grep -qE "^   help$" "$scratch/man.txt" || fail "COMMANDS has no help"
grep -qF "$doc/PROTOCOL.md" "$scratch/man.txt" || fail "FILES does not name $doc/PROTOCOL.md (the package's prefix)"
echo "man page: sections, commands and every flag of pycell help present"

# --- the bash completion -------------------------------------------------------------------
completion=$root/usr/share/bash-completion/completions/pycell
# Prints the completions of the words given (the last one being completed), one a line,
# sorted, as bash would offer them: the function `complete -p pycell` names, driven with
# COMP_WORDS and COMP_CWORD in a clean bash.
completions() {
  (cd "$scratch/cwd" && bash --norc --noprofile -c '
    source "$1" || exit 1
    shift
    function=$(complete -p pycell | sed -nE "s/.* -F ([^ ]+) .*/\1/p")
    [[ -n $function ]] || { echo "complete -p pycell names no function" >&2; exit 1; }
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    "$function" pycell "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$@") | sed '/^$/d' | sort
}
expect_completion() {  # EXPECTED WORDS...: EXPECTED is the completions, space-separated
  local expected=$1 got
  shift
  got=$(completions "$@" | paste -sd' ')
  [[ $got == "$expected" ]] || fail "completing '$*' gives '$got', not '$expected'"
  echo "completing '$*' -> $got"
}
mkdir -p "$scratch/cwd/data"
touch "$scratch/cwd/script.py" "$scratch/cwd/stats.py"
expect_completion run pycell r
expect_completion --timeout pycell run --ti
expect_completion "check mcp run serve" pycell help ''
expect_completion "datascience default javascript" pycell run --profile ''
expect_completion "auto lsp ndjson" pycell serve --framing ''
expect_completion "" pycell run --timeout ''
expect_completion "script.py stats.py" pycell run s
expect_completion "data" pycell run --out ''
expect_completion --framing pycell --stdio --fr
# Each command's flags are exactly those `pycell help COMMAND` lists.
for command in serve mcp run check; do
  diff <(help_flags "$pycell" "$command") <(completions pycell "$command" -) >/dev/null ||
    fail "completing 'pycell $command -' does not give the flags of pycell help $command:
$(diff <(help_flags "$pycell" "$command") <(completions pycell "$command" -))"
done
echo "completion: each command's flags are those of pycell help COMMAND"
echo "PASS"
