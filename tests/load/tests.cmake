# The load test: one real `pycell serve`, many executions from concurrent client streams over
# its stdio. Like the integration tests it links nothing of the server.
# Included from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.

# Catch2's main and the support files come from tests/CMakeLists.txt.
add_executable(pycell_load_tests ${CMAKE_CURRENT_SOURCE_DIR}/load/load_test.cc)
target_link_libraries(pycell_load_tests PRIVATE nlohmann_json::nlohmann_json Catch2::Catch2
                      pycell_catch_main pycell_test_support)
target_compile_definitions(pycell_load_tests PRIVATE PYCELL_BINARY="$<TARGET_FILE:pycell>")
add_dependencies(pycell_load_tests pycell)

# 10,000 executions by default (PYCELL_LOAD_EXECUTIONS), 5,000 under ctest; a sanitized server
# is several times slower, so that build runs 2,000. ASan's quarantine holds freed memory back by design; it is
# kept small so the server's resident size still says whether memory is lost.
add_test(NAME load COMMAND pycell_load_tests)
if(PYCELL_SANITIZE)
  set_tests_properties(load PROPERTIES TIMEOUT 900 COST 80
    ENVIRONMENT "PYCELL_LOAD_EXECUTIONS=2000;ASAN_OPTIONS=quarantine_size_mb=16")
else()
  # 5,000 under ctest: five times the first thousand that the memory check compares the last
  # with, in about half the CI time of 10,000 (the test's own default, for runs by hand).
  # COST: its usual seconds, so a fresh build tree starts it among the first (see integration).
  set_tests_properties(load PROPERTIES TIMEOUT 900 COST 130 ENVIRONMENT "PYCELL_LOAD_EXECUTIONS=5000")
endif()
