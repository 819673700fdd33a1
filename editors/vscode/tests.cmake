# The VS Code extension (editors/vscode), tested with node's test runner against the real
# binary: its protocol client (vscode_client), the extension's commands through a stand-in
# `vscode` module (vscode_extension), and its packaging into a .vsix with vsce
# (vscode_package). Included from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is
# tests/ here. The npm dependencies, pinned by editors/vscode/package-lock.json, are
# installed into a copy of the extension in the build tree: node_modules/ and out/ never
# land in the source tree.
find_program(PYCELL_NODE node)
find_program(PYCELL_NPM npm)
if(NOT PYCELL_NODE OR NOT PYCELL_NPM)
  message(WARNING "node and npm not found: the VS Code extension tests cannot run (scripts/install-deps.sh installs them)")
  return()
endif()

set(PYCELL_VSCODE_SRC ${PROJECT_SOURCE_DIR}/editors/vscode)
set(PYCELL_VSCODE_DIR ${CMAKE_CURRENT_BINARY_DIR}/vscode)

# A fresh copy of the sources at each configure (so a deleted source does not linger),
# re-run when one changes or a new one appears.
file(REMOVE_RECURSE ${PYCELL_VSCODE_DIR}/src ${PYCELL_VSCODE_DIR}/test ${PYCELL_VSCODE_DIR}/scripts
     ${PYCELL_VSCODE_DIR}/media)
file(GLOB PYCELL_VSCODE_FILES CONFIGURE_DEPENDS RELATIVE ${PYCELL_VSCODE_SRC}
     ${PYCELL_VSCODE_SRC}/src/*.ts
     ${PYCELL_VSCODE_SRC}/test/*.mjs
     ${PYCELL_VSCODE_SRC}/test/*.cjs
     ${PYCELL_VSCODE_SRC}/scripts/*.mjs
     ${PYCELL_VSCODE_SRC}/media/*.png)
foreach(f package.json package-lock.json tsconfig.json README.md LICENSE .vscodeignore ${PYCELL_VSCODE_FILES})
  configure_file(${PYCELL_VSCODE_SRC}/${f} ${PYCELL_VSCODE_DIR}/${f} COPYONLY)
endforeach()

# Install the pinned dependencies, then compile the TypeScript into out/.
add_test(NAME vscode_install
  COMMAND sh -c "\"$0\" ci --no-audit --no-fund --loglevel=error && \"$0\" run build" ${PYCELL_NPM}
  WORKING_DIRECTORY ${PYCELL_VSCODE_DIR})
set_tests_properties(vscode_install PROPERTIES FIXTURES_SETUP vscode_deps TIMEOUT 600)

add_test(NAME vscode_client COMMAND ${PYCELL_NODE} --test test/client.test.mjs
         WORKING_DIRECTORY ${PYCELL_VSCODE_DIR})
add_test(NAME vscode_extension COMMAND ${PYCELL_NODE} --test test/extension.test.mjs
         WORKING_DIRECTORY ${PYCELL_VSCODE_DIR})
add_test(NAME vscode_package COMMAND ${PYCELL_NODE} --test test/package.test.mjs
         WORKING_DIRECTORY ${PYCELL_VSCODE_DIR})
set_tests_properties(vscode_client vscode_extension vscode_package PROPERTIES
  FIXTURES_REQUIRED vscode_deps TIMEOUT 300
  ENVIRONMENT "PYCELL_BINARY=$<TARGET_FILE:pycell>;PYCELL_NPM=${PYCELL_NPM}")
