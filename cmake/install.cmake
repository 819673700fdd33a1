# Installing pycell like a Debian tool: the binary, the man page pycell(1), the bash
# completion and the docs; `cpack -G DEB` in the build directory makes the .deb of them.
# Included from the top CMakeLists.txt. The test programs have no install rules.
include(GNUInstallDirs)
# cpack (and the install target) would first build everything, the test programs included,
# in the build tree it packages; installing takes what is built (cmake --build first), so
# that packaging is quick and two cpack runs never build in the same tree at once.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS  # not the umask's: dpkg keeps what it is given
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

# The man page and the completion come from README.md's help blocks, as `pycell --help` does.
set(PYCELL_HELP_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/help_blocks.cmake)
set(PYCELL_MAN_PAGE ${CMAKE_CURRENT_BINARY_DIR}/pycell.1)
add_custom_command(
  OUTPUT ${PYCELL_MAN_PAGE}
  COMMAND ${CMAKE_COMMAND} -DINPUT=${PROJECT_SOURCE_DIR}/README.md -DOUTPUT=${PYCELL_MAN_PAGE}
          -DVERSION=${PROJECT_VERSION} -DDOCDIR=${CMAKE_INSTALL_FULL_DOCDIR}
          -P ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake
  DEPENDS ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake ${PYCELL_HELP_SCRIPTS}
  COMMENT "Writing the man page pycell(1) from README.md")
set(PYCELL_COMPLETION ${CMAKE_CURRENT_BINARY_DIR}/pycell-completion.bash)
add_custom_command(
  OUTPUT ${PYCELL_COMPLETION}
  COMMAND ${CMAKE_COMMAND} -DINPUT=${PROJECT_SOURCE_DIR}/README.md -DOUTPUT=${PYCELL_COMPLETION}
          -P ${PROJECT_SOURCE_DIR}/cmake/bash_completion.cmake
  DEPENDS ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/cmake/bash_completion.cmake
          ${PROJECT_SOURCE_DIR}/cmake/pycell-completion.bash.in ${PYCELL_HELP_SCRIPTS}
  COMMENT "Writing the bash completion from README.md")
add_custom_target(pycell_docs ALL DEPENDS ${PYCELL_MAN_PAGE} ${PYCELL_COMPLETION})

install(TARGETS pycell RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PYCELL_COMPLETION} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME pycell)
install(FILES README.md docs/PROTOCOL.md docs/DESIGN.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY schemas/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/schemas)
# The page names where the docs are, and that depends on the prefix installed to, which
# cpack sets (/usr) apart from the configured one: the page is finished, then compressed as
# man-db reads it, at install time. -n leaves the name and time out of the .gz (reproducible).
find_program(PYCELL_GZIP gzip REQUIRED)
install(CODE "
  set(man1 \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_MANDIR}/man1\")
  message(STATUS \"Installing: \${man1}/pycell.1.gz\")
  file(READ \"${PYCELL_MAN_PAGE}\" page)
  string(REPLACE \"${CMAKE_INSTALL_FULL_DOCDIR}/\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}/\" page \"\${page}\")
  file(MAKE_DIRECTORY \"\${man1}\")
  file(WRITE \"\${man1}/pycell.1\" \"\${page}\")
  execute_process(COMMAND \"${PYCELL_GZIP}\" -9nf \"\${man1}/pycell.1\" COMMAND_ERROR_IS_FATAL ANY)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${man1}/pycell.1.gz\")
")

# --- the Debian package: `cpack -G DEB` ---------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pycell)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "run untrusted Python in isolated, pre-warmed sandboxes")
# Lines under 80 columns, as dpkg shows them.
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
  "pycell runs untrusted Python and JavaScript (code an LLM wrote, a student's"
  "submission, an editor selection) in sandboxes the Linux kernel enforces: user,"
  "pid, mount, network, IPC and UTS namespaces, a seccomp filter, cgroups and"
  "rlimits. It is one program: a JSON-RPC server on stdin/stdout (pycell serve),"
  "a Model Context Protocol server (pycell mcp), a runner for one file (pycell"
  "run) and a check of the machine (pycell check).")
set(PYCELL_DEB_MAINTAINER "pycell maintainers <pycell@invalid>" CACHE STRING
    "the Maintainer field of the .deb (Name <address>)")
set(CPACK_PACKAGE_CONTACT "${PYCELL_DEB_MAINTAINER}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # pycell_VERSION_ARCH.deb, as apt-get install ./ expects
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)  # the build's debug information stays in the build tree
# The libraries the binary links (libseccomp2, libc6, libstdc++6, libgcc-s1) come from
# dpkg-shlibdeps (dpkg-dev), which reads the installed packages' shlibs offline, with the
# versions the binary really needs. The sandboxed interpreter is run, not linked: python3.
find_program(PYCELL_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(PYCELL_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "python3")
else()
  message(STATUS "dpkg-shlibdeps not found (dpkg-dev): the .deb declares its libraries without versions")
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6, libgcc-s1, libseccomp2, libstdc++6, python3")
endif()
# What the built-in profiles use (datascience, javascript) and the network of runs that ask
# for one: pycell works without them, and `pycell check` says what is missing.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3-numpy, python3-pandas, python3-matplotlib, nodejs, slirp4netns")
include(CPack)
