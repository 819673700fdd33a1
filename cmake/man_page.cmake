# Writes the man page pycell(1), in roff, to OUTPUT from README.md's command-line help blocks
# (INPUT): the text `pycell --help` prints, so the page cannot say something else. VERSION
# goes in the title line, DOCDIR (where the docs are installed) under FILES.
#
# Each command's block is read as paragraphs, told apart by their first line: "Usage:",
# "Options:", "Exit status:", "Example...", anything else is description.
cmake_policy(VERSION 3.25)  # run with -P: quoted strings are not variables (CMP0054)
include(${CMAKE_CURRENT_LIST_DIR}/help_blocks.cmake)

# roff treats a backslash as an escape and "." or "'" first on a line as a request; "\-" is
# the minus sign a reader can paste into a shell (a bare "-" may render as a hyphen).
function(roff text out)
  pycell_help_unescape("${text}" text)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  if(text MATCHES "^[.']")
    set(text "\\&${text}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# "pycell run FILE|- [options]" with "pycell run" in bold.
function(roff_synopsis text out)
  roff("${text}" text)
  if(text MATCHES "^pycell ([^ ]+)(.*)$")
    set(text "\\fBpycell ${CMAKE_MATCH_1}\\fR${CMAKE_MATCH_2}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# An option's tag: "--timeout SECONDS" as bold flag and italic value, "-h, --help" both bold.
function(roff_option_tag short flag value out)
  roff("${flag}" flag)
  set(tag "\\fB${flag}\\fR")
  if(short)
    set(tag "\\fB\\-h\\fR, ${tag}")
  endif()
  if(value)
    string(STRIP "${value}" value)
    roff("${value}" value)
    string(APPEND tag " \\fI${value}\\fR")
  endif()
  set(${out} "${tag}" PARENT_SCOPE)
endfunction()

# Reads the block of command NAME into, in the caller's scope: NAME_usage (its usage line,
# roff), NAME_description, NAME_options, NAME_example (roff, ready to print), NAME_exit
# (the exit status text, roff).
function(read_command readme name)
  pycell_help_block("${readme}" ${name} text)
  pycell_help_lines("${text}" lines)
  set(kind "")
  set(usage "")
  set(description "")
  set(options "")
  set(example "")
  set(exit "")
  foreach(line IN LISTS lines)
    if(line STREQUAL "")
      set(kind "")
      continue()
    endif()
    if(kind STREQUAL "")  # the first line of a paragraph says what the paragraph is
      if(line MATCHES "^Usage: (.*)$")
        set(kind usage)
        roff_synopsis("${CMAKE_MATCH_1}" usage)
        string(REGEX REPLACE "   +" "  " usage "${usage}")
        continue()
      elseif(line STREQUAL "Options:")
        set(kind options)
        continue()
      elseif(line MATCHES "^Exit status: (.*)$")
        set(kind exit)
        roff("${CMAKE_MATCH_1}" exit)
        continue()
      elseif(line MATCHES "^Example")
        set(kind example)
        roff("${line}" heading)
        string(APPEND example ".PP\n${heading}\n.RS 4\n.nf\n")
        continue()
      else()
        set(kind description)
        string(APPEND description ".PP\n")
      endif()
    endif()
    if(kind STREQUAL "options")
      if(line MATCHES "${PYCELL_HELP_OPTION_LINE}")
        roff_option_tag("${CMAKE_MATCH_1}" "${CMAKE_MATCH_2}" "${CMAKE_MATCH_3}" tag)
        roff("${CMAKE_MATCH_4}" body)
        string(APPEND options ".TP\n${tag}\n${body}\n")
      elseif(line MATCHES "^   +(.*)$")  # the description goes on
        roff("${CMAKE_MATCH_1}" body)
        string(APPEND options "${body}\n")
      else()
        message(FATAL_ERROR "README.md, help block '${name}': not an option line: ${line}")
      endif()
    elseif(kind STREQUAL "exit")
      string(STRIP "${line}" line)
      roff("${line}" line)
      string(APPEND exit " ${line}")
    elseif(kind STREQUAL "example")
      string(REGEX REPLACE "^  " "" line "${line}")
      roff("${line}" line)
      string(APPEND example "${line}\n")
    elseif(kind STREQUAL "description")
      string(STRIP "${line}" line)
      roff("${line}" line)
      string(APPEND description "${line}\n")
    else()
      message(FATAL_ERROR "README.md, help block '${name}': unexpected line after '${kind}': ${line}")
    endif()
  endforeach()
  if(example)
    string(APPEND example ".fi\n.RE\n")
  endif()
  foreach(part usage options exit)
    if("${${part}}" STREQUAL "")
      message(FATAL_ERROR "README.md, help block '${name}' has no ${part}")
    endif()
  endforeach()
  foreach(part usage description options example exit)
    set(${name}_${part} "${${part}}" PARENT_SCOPE)
  endforeach()
endfunction()

# The overview block: the one-line summary (NAME), one usage line per command, and the
# exit status every command shares.
function(read_overview readme)
  pycell_help_block("${readme}" pycell text)
  pycell_help_lines("${text}" lines)
  set(summary "")
  set(commands "")
  set(exit "")
  set(kind "")
  foreach(line IN LISTS lines)
    if(line STREQUAL "")
      set(kind "")
    elseif(line MATCHES "^pycell: (.*)\\.$")
      roff("${CMAKE_MATCH_1}" summary)
    elseif(line STREQUAL "Usage:")
      set(kind usage)
    elseif(kind STREQUAL "usage" AND line MATCHES "^  (pycell ([^ ]+)[^ ]*( [^ ]+)*)  +(.*)$")
      string(MAKE_C_IDENTIFIER "${CMAKE_MATCH_2}" key)
      list(APPEND commands ${key})
      set(overview_${key}_word "${CMAKE_MATCH_2}" PARENT_SCOPE)
      roff_synopsis("${CMAKE_MATCH_1}" synopsis)
      set(overview_${key}_synopsis "${synopsis}" PARENT_SCOPE)
      roff("${CMAKE_MATCH_4}" what)
      set(overview_${key}_what "${what}" PARENT_SCOPE)
    elseif(line MATCHES "^Exit status: (.*)$")
      roff("${CMAKE_MATCH_1}" exit)
    else()
      message(FATAL_ERROR "README.md, help block 'pycell': unexpected line: ${line}")
    endif()
  endforeach()
  if(summary STREQUAL "" OR commands STREQUAL "" OR exit STREQUAL "")
    message(FATAL_ERROR "README.md, help block 'pycell': the summary, usage or exit status is missing")
  endif()
  set(overview_summary "${summary}" PARENT_SCOPE)
  set(overview_commands "${commands}" PARENT_SCOPE)
  set(overview_exit "${exit}" PARENT_SCOPE)
endfunction()

file(READ ${INPUT} readme)
read_overview("${readme}")
set(documented serve mcp run check)
foreach(name ${documented})
  read_command("${readme}" ${name})
endforeach()

# The date of the build, or of SOURCE_DATE_EPOCH when set (a reproducible build).
string(TIMESTAMP date "%Y-%m-%d" UTC)
set(page ".\\\" Generated from README.md's section \"Command line\" (cmake/man_page.cmake); do not edit.
.TH PYCELL 1 \"${date}\" \"pycell ${VERSION}\" \"User Commands\"
.\\\" Left-aligned and unhyphenated: method names and paths stay whole.
.ad l
.nh
.SH NAME
pycell \\- ${overview_summary}
.SH SYNOPSIS
.nf
")
foreach(key ${overview_commands})
  string(APPEND page "${overview_${key}_synopsis}\n")
endforeach()
string(APPEND page ".fi
.SH DESCRIPTION
\\fBpycell\\fR is one program with a few commands: a server for editors and programs, a
server for agents, a runner for one file and a check of the machine. They share the
sandboxes, profiles and limits described below. \\fBpycell help\\fR \\fIcommand\\fR prints the
text of that command's sections of this page.
.SH COMMANDS
")
foreach(key ${overview_commands})
  set(word "${overview_${key}_word}")
  if(word MATCHES "^-")  # an option of pycell itself, listed under OPTIONS
    continue()
  endif()
  string(APPEND page ".SS ${word}\n")
  if(word IN_LIST documented)
    string(APPEND page "${${word}_usage}\n${${word}_description}${${word}_example}")
  else()
    string(APPEND page "${overview_${key}_synopsis}\n.PP\n${overview_${key}_what}\n")
  endif()
endforeach()
string(APPEND page ".SH OPTIONS\n.SS pycell\n")
foreach(key ${overview_commands})
  set(word "${overview_${key}_word}")
  if(word MATCHES "^-")
    roff("${word}" flag)
    string(APPEND page ".TP\n\\fB${flag}\\fR\n${overview_${key}_what}\n")
  endif()
endforeach()
foreach(name ${documented})
  string(APPEND page ".SS \"pycell ${name}\"\n${${name}_options}")
endforeach()
string(APPEND page ".SH \"EXIT STATUS\"\n${overview_exit}\n")
foreach(name ${documented})
  string(APPEND page ".TP\n\\fBpycell ${name}\\fR\n${${name}_exit}\n")
endforeach()
# The path is written as given, "-" included: the install step finds it by that text to put in
# the prefix installed to (cmake/install.cmake).
string(REPLACE "\\" "\\e" docdir "${DOCDIR}")
string(APPEND page ".SH FILES
.TP
\\fI${docdir}/README.md\\fR
the guide: profiles, limits, the policy, the clients and editors.
.TP
\\fI${docdir}/PROTOCOL.md\\fR
the JSON\\-RPC protocol of \\fBpycell serve\\fR.
.TP
\\fI${docdir}/DESIGN.md\\fR
how the sandboxes are built, and why.
.TP
\\fI${docdir}/schemas/\\fR
JSON Schemas of every message, and of the file \\fB\\-\\-config\\fR reads
(\\fIconfig.schema.json\\fR).
.SH \"SEE ALSO\"
\\fBpython3\\fR(1), \\fBnode\\fR(1), \\fBslirp4netns\\fR(1), \\fBnamespaces\\fR(7),
\\fBseccomp\\fR(2), \\fBcgroups\\fR(7)
")
file(WRITE ${OUTPUT} "${page}")
