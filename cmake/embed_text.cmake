# Writes INPUT into OUTPUT as a C++ raw string constant `pycell::NAME`.
file(READ ${INPUT} content)
string(FIND "${content}" ")PYCELL\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter")
endif()
file(WRITE ${OUTPUT} "// Generated; do not edit.\n#pragma once\n#include <string_view>\nnamespace pycell {\ninline constexpr std::string_view ${NAME} = R\"PYCELL(${content})PYCELL\";\n}\n")
