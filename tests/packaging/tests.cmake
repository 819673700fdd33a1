# The Debian package cpack makes, checked from outside (included from tests/CMakeLists.txt).
# Both build their own .deb from this build tree into a scratch directory, so they need the
# pycell and pycell_docs targets built (the default target builds both).
set(PYCELL_PACKAGING_ARGS ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${PROJECT_VERSION})

# What is in the .deb: its control fields, its files, the binary, man page and completion
# as extracted (no root needed, nothing installed).
add_test(NAME packaging_deb_contents
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb_contents.sh ${PYCELL_PACKAGING_ARGS})
set_tests_properties(packaging_deb_contents PROPERTIES TIMEOUT 300)

# The .deb installed on this machine with apt-get, used, then removed without a trace. Root
# only; it skips (exit 77) when not root, when dpkg is busy, or when a pycell it did not
# install is there. RESOURCE_LOCK: one dpkg operation at a time among the tests.
add_test(NAME packaging_deb_install
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/deb_install.sh ${PYCELL_PACKAGING_ARGS})
set_tests_properties(packaging_deb_install PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 RESOURCE_LOCK dpkg)
