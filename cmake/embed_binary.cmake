# Writes the bytes of INPUT into OUTPUT as `inline constexpr unsigned char NAME[]`.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" len)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUTPUT} "// Generated from ${INPUT_NAME}; do not edit.\n#pragma once\n#include <cstddef>\nnamespace pycell {\ninline constexpr unsigned char ${NAME}[] = {${bytes}};\n}\n")
