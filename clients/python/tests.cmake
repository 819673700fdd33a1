# The Python client (clients/python/pycell_client.py), its agent example and the run_python
# tool definitions (schemas/tools/), tested against the real binary with the system
# interpreter and Debian's python3-jsonschema.
# Included from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
add_test(NAME python_client
  COMMAND /usr/bin/python3 -m unittest -v test_client
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/clients/python)
set_tests_properties(python_client PROPERTIES
  TIMEOUT 300
  ENVIRONMENT "PYCELL_BINARY=$<TARGET_FILE:pycell>;PYCELL_TOOL_SCHEMAS=${PROJECT_SOURCE_DIR}/schemas/tools;PYTHONDONTWRITEBYTECODE=1")
