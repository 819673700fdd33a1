# Neovim plugin (editors/nvim): headless Neovim loads the plugin and drives the real binary
# (run, streaming, kill, diagnostics, analyze, status, shutdown). Included from
# tests/CMakeLists.txt. Debian's `neovim` package (0.7) is enough.
find_program(PYCELL_NVIM nvim)
if(PYCELL_NVIM)
  set(PYCELL_NVIM_DIR ${PROJECT_SOURCE_DIR}/editors/nvim)
  add_test(NAME nvim_plugin
    COMMAND ${PYCELL_NVIM} --headless -u NONE --noplugin -i NONE -n
            -c "set rtp+=${PYCELL_NVIM_DIR}"
            -c "luafile ${PYCELL_NVIM_DIR}/tests/run.lua")
  # The script exits non-zero on any failure; the regular expression is a second guard.
  set_tests_properties(nvim_plugin PROPERTIES
    ENVIRONMENT "PYCELL_BINARY=$<TARGET_FILE:pycell>"
    TIMEOUT 300
    FAIL_REGULAR_EXPRESSION "FAIL  ")
else()
  message(WARNING "nvim not found: the Neovim plugin test (nvim_plugin) cannot run (apt-get install neovim)")
endif()
