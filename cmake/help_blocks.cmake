# README.md's command-line help blocks, the one source of `pycell --help` (cli_help.cmake),
# the man page (man_page.cmake) and the bash completion (bash_completion.cmake). Each block
# sits between "<!-- help: NAME -->" and "<!-- /help -->", inside a ```text fence.
set(PYCELL_HELP_NAMES pycell serve mcp run check)
# A line of an "Options:" list: "  --name VALUE   what it does" or "  -h, --help   ...";
# matches 1 "-h, " or nothing, 2 the flag, 3 " VALUE" or nothing, 4 the description. A line
# that starts with more spaces carries the description on. (tests/cli/help_test.cc reads
# the flags the same way.)
set(PYCELL_HELP_OPTION_LINE "^  (-h, )?(--[a-z][a-z-]*)( [^ ]+)?  +(.*)$")

# Sets OUT to the text of block NAME of README (the file's contents), without the fence.
function(pycell_help_block readme name out)
  set(open "<!-- help: ${name} -->\n```text\n")
  string(FIND "${readme}" "${open}" start)
  if(start EQUAL -1)
    message(FATAL_ERROR "README.md has no help block for '${name}'")
  endif()
  string(LENGTH "${open}" skip)
  math(EXPR start "${start} + ${skip}")
  string(SUBSTRING "${readme}" ${start} -1 rest)
  string(FIND "${rest}" "```\n<!-- /help -->" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "README.md: the help block for '${name}' is not closed")
  endif()
  string(SUBSTRING "${rest}" 0 ${end} text)
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Sets OUT to a list of the lines of TEXT. Semicolons and brackets would split or group CMake
# list items, so they travel as placeholders; pycell_help_unescape puts them back.
function(pycell_help_lines text out)
  string(REPLACE "[" "<PYCELL_LB>" text "${text}")
  string(REPLACE "]" "<PYCELL_RB>" text "${text}")
  string(REPLACE ";" "<PYCELL_SEMI>" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

function(pycell_help_unescape text out)
  string(REPLACE "<PYCELL_LB>" "[" text "${text}")
  string(REPLACE "<PYCELL_RB>" "]" text "${text}")
  string(REPLACE "<PYCELL_SEMI>" ";" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Sets OUT to the options of help TEXT (a command's block), one "FLAG=VALUE" item each, VALUE
# empty for a switch: "--timeout=SECONDS", "--json=", and "-h=" beside "--help=".
function(pycell_help_options text out)
  pycell_help_lines("${text}" lines)
  set(options "")
  foreach(line IN LISTS lines)
    if(line MATCHES "${PYCELL_HELP_OPTION_LINE}")
      if(CMAKE_MATCH_1)
        list(APPEND options "-h=")
      endif()
      string(STRIP "${CMAKE_MATCH_3}" value)
      list(APPEND options "${CMAKE_MATCH_2}=${value}")
    endif()
  endforeach()
  set(${out} "${options}" PARENT_SCOPE)
endfunction()
