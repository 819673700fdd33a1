# The Python client (clients/python/pycell_client/, a package), its agent example and the
# run_python tool definitions (schemas/tools/), tested against the real binary with the
# system interpreter: python_client (the sync client, the example, the tool definitions; needs
# python3-jsonschema), python_client_async (AsyncPycell: streaming, cancellation, sessions),
# python_client_connect (Pycell.connect and AsyncPycell.connect to `pycell serve --listen` on
# a unix socket and on loopback TCP with a token; the tests start those servers and stop them
# with SIGTERM),
# python_client_package (the public API, `python3 -m pycell_client`, an offline install into a
# fresh venv, mypy --strict; needs python3-venv, python3-pip, python3-setuptools, python3-wheel
# and mypy, which scripts/install-deps.sh installs: without them the test fails and says so),
# python_client_examples (examples/: the Celery task run in eager mode, needs python3-celery,
# skipped without it; the Ray actor's methods with a stand-in `ray`, Ray not being in Debian).
# Included from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
set(_pycell_python_env
  "PYCELL_BINARY=$<TARGET_FILE:pycell>;PYCELL_TOOL_SCHEMAS=${PROJECT_SOURCE_DIR}/schemas/tools;PYTHONDONTWRITEBYTECODE=1")
add_test(NAME python_client
  COMMAND /usr/bin/python3 -m unittest -v test_client
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/clients/python)
add_test(NAME python_client_async
  COMMAND /usr/bin/python3 -m unittest -v test_async
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/clients/python)
add_test(NAME python_client_connect
  COMMAND /usr/bin/python3 -m unittest -v test_connect
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/clients/python)
add_test(NAME python_client_package
  COMMAND /usr/bin/python3 -m unittest -v test_package
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/clients/python)
add_test(NAME python_client_examples
  COMMAND /usr/bin/python3 -m unittest -v test_examples
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/clients/python)
set_tests_properties(python_client python_client_async python_client_connect python_client_examples
  PROPERTIES TIMEOUT 300 ENVIRONMENT "${_pycell_python_env}")
set_tests_properties(python_client_package PROPERTIES TIMEOUT 600 ENVIRONMENT "${_pycell_python_env}")
