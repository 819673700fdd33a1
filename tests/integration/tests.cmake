# Integration tests: spawn the real `pycell` binary and talk to it over its stdio, as a client
# would. They link nothing of the server: the binary is the unit under test.
# Included from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.

file(GLOB PYCELL_INTEGRATION_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/integration/*.cc)

# Catch2's main and the support files come from tests/CMakeLists.txt.
add_executable(pycell_integration_tests ${PYCELL_INTEGRATION_SOURCES})
target_link_libraries(pycell_integration_tests PRIVATE nlohmann_json::nlohmann_json Catch2::Catch2
                      pycell_catch_main pycell_test_support)
target_compile_definitions(pycell_integration_tests PRIVATE PYCELL_BINARY="$<TARGET_FILE:pycell>"
  PYCELL_TYPICAL_PROGRAMS="${CMAKE_CURRENT_SOURCE_DIR}/sandbox/typical_programs.py")
add_dependencies(pycell_integration_tests pycell)
target_precompile_headers(pycell_integration_tests PRIVATE ${PYCELL_PCH_HEADERS} <catch2/catch.hpp>)

# The sanitizer build runs 2-3 times slower and keeps freed memory in a quarantine: its
# runs get a smaller quarantine (so memory figures mean something) and time bounds scaled
# by PYCELL_TEST_TIME_SCALE (see scaled() in support/server_process.h).
# COST: the suite's usual seconds, so that a fresh build tree (no CTestCostData.txt yet)
# starts the long tests first and `ctest -j` keeps every slot busy.
if(PYCELL_SANITIZE)
  set(PYCELL_INTEGRATION_ENV "ASAN_OPTIONS=quarantine_size_mb=16" "PYCELL_TEST_TIME_SCALE=3")
  set(PYCELL_INTEGRATION_COST 440)
else()
  set(PYCELL_INTEGRATION_ENV "PYCELL_TEST_TIME_SCALE=1")
  set(PYCELL_INTEGRATION_COST 260)
endif()

# The suite runs in shards (every Nth test case, support/catch_shard.sh), so that `ctest -j`
# spreads it over every core instead of one process holding one core for minutes:
# integration_root_1 .. _N, and the same for integration_unprivileged.
set(PYCELL_INTEGRATION_SHARDS 2 CACHE STRING "shards of the integration suite under ctest")
function(pycell_integration_shards name env)
  math(EXPR cost "${PYCELL_INTEGRATION_COST} / ${PYCELL_INTEGRATION_SHARDS}")
  foreach(index RANGE 1 ${PYCELL_INTEGRATION_SHARDS})
    add_test(NAME ${name}_${index}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/support/catch_shard.sh
                     $<TARGET_FILE:pycell_integration_tests> ${index} ${PYCELL_INTEGRATION_SHARDS})
    set_tests_properties(${name}_${index} PROPERTIES TIMEOUT 900 COST ${cost} ENVIRONMENT "${env}")
  endforeach()
endfunction()

pycell_integration_shards(integration_root "${PYCELL_INTEGRATION_ENV}")

# The same suite with the server started as nobody (the test process stays root so it can
# inspect /proc and the cgroup tree). Only possible when the tests run as root.
execute_process(COMMAND id -u OUTPUT_VARIABLE PYCELL_TEST_UID OUTPUT_STRIP_TRAILING_WHITESPACE)
find_program(PYCELL_SETPRIV setpriv)
if(PYCELL_TEST_UID STREQUAL "0" AND PYCELL_SETPRIV)
  pycell_integration_shards(integration_unprivileged "PYCELL_TEST_RUN_AS=65534;${PYCELL_INTEGRATION_ENV}")
endif()
