# The JavaScript bootstrap and analyzer (src/js/bootstrap.js, src/js/analyze.js), driven as
# the server drives them: a real node with the request and result descriptors as pipes, no
# sandbox, no npm packages (node's own test runner). Included from tests/CMakeLists.txt,
# after PYCELL_NODE is looked for.
if(PYCELL_NODE)
  add_test(NAME js_bootstrap COMMAND ${PYCELL_NODE} --test ${CMAKE_CURRENT_LIST_DIR}/bootstrap.test.mjs)
  set_tests_properties(js_bootstrap PROPERTIES TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
else()
  message(WARNING "node not found: the JavaScript bootstrap test (js_bootstrap) cannot run")
endif()
