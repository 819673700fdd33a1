-- Headless test of pycell.nvim against the real pycell binary.
--
--   PYCELL_BINARY=/path/to/pycell nvim --headless -u NONE --noplugin \
--     -c "set rtp+=editors/nvim" -c "luafile editors/nvim/tests/run.lua"
--
-- Prints one line per check and ends with "N passed, N failed"; exits non-zero on any
-- failure. Every wait has a timeout and a watchdog ends the process if all else fails.
local uv = vim.loop
local api = vim.api

local passed, failed = 0, 0
local function out(s)
  io.stdout:write(s .. '\n')
  io.stdout:flush()
end

local OVERALL_MS = tonumber(os.getenv('PYCELL_NVIM_TEST_TIMEOUT_MS') or '') or 240000
local watchdog = uv.new_timer()
watchdog:start(OVERALL_MS, 0, function()
  -- Do not leave the server behind (pycell itself also exits with its client).
  local m = package.loaded['pycell']
  local pid = m and m._state.client and m._state.client.pid
  if pid then
    pcall(uv.kill, pid, 'sigkill')
  end
  io.stdout:write(string.format('FAIL  watchdog: the test did not finish within %d ms\n', OVERALL_MS))
  io.stdout:write(string.format('%d passed, %d failed\n', passed, failed + 1))
  io.stdout:flush()
  os.exit(1)
end)

local function check(name, ok, detail)
  if ok then
    passed = passed + 1
    out('ok    ' .. name)
  else
    failed = failed + 1
    out('FAIL  ' .. name .. (detail and (': ' .. tostring(detail)) or ''))
  end
  return ok
end

local function finish()
  watchdog:stop()
  out(string.format('%d passed, %d failed', passed, failed))
  if failed > 0 then
    vim.cmd('cquit 1')
  else
    vim.cmd('qall!')
  end
end

-- Wait (processing events) until cond() is true, at most ms.
local function wait(ms, cond)
  return vim.wait(ms, cond, 20)
end

-- Keep what the plugin tells the user.
local messages = {}
vim.notify = function(msg, level)
  table.insert(messages, { msg = tostring(msg), level = level })
end

local function find(lines, pattern, plain)
  for i, l in ipairs(lines) do
    if l:find(pattern, 1, plain) then
      return i
    end
  end
  return nil
end

local function scratch(lines, filetype)
  vim.cmd('enew!')
  local buf = api.nvim_get_current_buf()
  api.nvim_buf_set_option(buf, 'buftype', 'nofile')
  api.nvim_buf_set_option(buf, 'filetype', filetype or 'python')
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  return buf
end

local function main()
  local binary = os.getenv('PYCELL_BINARY')
  if not check('PYCELL_BINARY names an executable', binary and binary ~= '' and vim.fn.executable(binary) == 1, tostring(binary)) then
    return
  end

  vim.cmd('runtime! plugin/pycell.lua')
  check('plugin defines the commands', vim.fn.exists(':PycellRun') == 2 and vim.fn.exists(':PycellKill') == 2
    and vim.fn.exists(':PycellAnalyze') == 2 and vim.fn.exists(':PycellStatus') == 2)
  check('plugin registers the VimLeavePre hook',
    #api.nvim_get_autocmds({ group = 'pycell_exit', event = 'VimLeavePre' }) == 1)

  local pycell = require('pycell')
  local S = pycell._state
  local output = require('pycell.output')
  pycell.setup({ binary = binary, profile = 'default', stream = true, limits = { memoryMb = 256 } })
  check('server not started before first use', S.client == nil)

  local function run_and_wait(cmd, ms)
    local before = S.seq
    vim.cmd(cmd)
    local run = S.current
    if S.seq == before or not run then
      return nil
    end
    wait(ms or 20000, function()
      return run.done
    end)
    return run
  end

  -- 1. Run a buffer: output and status ok.
  local src = scratch({ "print('hello from pycell')", '6 * 7' })
  local src_win = api.nvim_get_current_win()
  local run = run_and_wait('PycellRun')
  check('run: finished', run and run.done, run and run.status)
  check('run: status ok', run and run.status == 'ok', run and (run.status .. ' ' .. vim.inspect(run.err)))
  local lines = output.get_lines()
  check('run: output buffer has the program output', find(lines, 'hello from pycell', true), vim.inspect(lines))
  check('run: output buffer shows status ok', find(lines, '^%[pycell%] ok'), vim.inspect(lines))
  check('run: output buffer shows the value', find(lines, 'value: 42', true), vim.inspect(lines))
  check('run: output shown in a split, cursor stays in the source', vim.fn.bufwinnr(output.buffer()) ~= -1
    and api.nvim_get_current_win() == src_win)
  check('run: server started lazily and initialized', S.client and S.client:is_ready()
    and S.client.server.serverInfo.name == 'pycell', S.client and S.client.state)

  -- 2. Streaming: the first line shows before the execution ends.
  scratch({
    'import time',
    'for i in range(5):',
    "    print('tick', i, flush=True)",
    '    time.sleep(0.2)',
  })
  vim.cmd('PycellRun')
  run = S.current
  local seen_early = wait(10000, function()
    return find(output.get_lines(), 'tick 0', true) ~= nil or run.done
  end)
  local first_before_end = seen_early and find(output.get_lines(), 'tick 0', true) ~= nil and not run.done
  check('stream: first line in the output buffer before the execution ends', first_before_end,
    string.format('done=%s lines=%s', tostring(run.done), vim.inspect(output.get_lines())))
  wait(20000, function()
    return run.done
  end)
  lines = output.get_lines()
  local t0, t4 = find(lines, 'tick 0', true), find(lines, 'tick 4', true)
  check('stream: all lines in order and status ok', run.status == 'ok' and t0 and t4 and t0 < t4,
    string.format('status=%s lines=%s', tostring(run.status), vim.inspect(lines)))
  check('stream: output came as several notifications', (run.chunks or 0) >= 2, run.chunks)

  -- 3. An exception becomes a diagnostic at its line.
  src = scratch({ 'x = 1', 'y = 2', "raise ValueError('boom')", 'z = 3' })
  run = run_and_wait('PycellRun')
  check('error: status error', run and run.status == 'error', run and run.status)
  local d = vim.diagnostic.get(src, { namespace = pycell.namespaces.run })
  check('error: one diagnostic at line 3', #d == 1 and d[1].lnum == 2, vim.inspect(d))
  check('error: diagnostic names the exception', d[1] and d[1].message:find('ValueError: boom', 1, true), d[1] and d[1].message)
  check('error: output buffer shows the error with its line', find(output.get_lines(), 'error: ValueError: boom (line 3)', true),
    vim.inspect(output.get_lines()))

  --    ... and in a range, at the buffer's line (the indented range is dedented to run).
  src = scratch({ "print('header')", 'def f():', '    a = 1', '    b = a / 0', '    return b' })
  run = run_and_wait('3,4PycellRun')
  d = vim.diagnostic.get(src, { namespace = pycell.namespaces.run })
  check('range: runs only the range, error at buffer line 4', run and run.status == 'error' and #d == 1 and d[1].lnum == 3
    and find(output.get_lines(), '^header') == nil,
    vim.inspect({ status = run and run.status, diags = d, out = output.get_lines() }))
  check('range: ZeroDivisionError reported', d[1] and d[1].message:find('ZeroDivisionError', 1, true), d[1] and d[1].message)

  -- 4. Kill ends a long sleep with status killed.
  scratch({ 'import time', "print('sleeping', flush=True)", 'time.sleep(30)' })
  vim.cmd('PycellRun')
  run = S.current
  local running = wait(10000, function()
    return find(output.get_lines(), 'sleeping', true) ~= nil or run.done
  end) and not run.done
  check('kill: the sleep is running', running, run.status)
  local n_msgs = #messages
  check('kill: a second run is refused while one runs', pycell.run({}) == nil and #messages > n_msgs
    and messages[#messages].msg:find('still running', 1, true), vim.inspect(messages[#messages]))
  local t_kill = uv.hrtime()
  vim.cmd('PycellKill')
  wait(10000, function()
    return run.done
  end)
  local elapsed = (uv.hrtime() - t_kill) / 1e6
  check('kill: status killed', run.status == 'killed', run.status)
  check('kill: ended promptly', run.done and elapsed < 5000, string.format('%.0f ms', elapsed))
  check('kill: output buffer shows killed', find(output.get_lines(), '^%[pycell%] killed'), vim.inspect(output.get_lines()))

  -- 5. Analyze: a syntax error becomes a diagnostic at its line.
  src = scratch({ 'import os', '', 'def f(:', '    pass' })
  vim.cmd('PycellAnalyze')
  local got = wait(20000, function()
    return #vim.diagnostic.get(src, { namespace = pycell.namespaces.analyze }) > 0
  end)
  d = vim.diagnostic.get(src, { namespace = pycell.namespaces.analyze })
  local at_line3 = false
  for _, x in ipairs(d) do
    at_line3 = at_line3 or (x.lnum == 2 and x.severity == vim.diagnostic.severity.ERROR)
  end
  check('analyze: syntax error diagnostic at line 3', got and at_line3, vim.inspect(d))
  out(string.format('      (analyze went through %s)', S.analyze_method == false and 'the execute fallback' or 'the analyze method'))

  src = scratch({ 'x = 1', 'y = (', '' })
  local result
  pycell.analyze({ bufnr = src, on_done = function(e, diags, via) result = { e = e, diags = diags, via = via } end })
  wait(20000, function()
    return result ~= nil
  end)
  d = vim.diagnostic.get(src, { namespace = pycell.namespaces.analyze })
  check('analyze: unclosed bracket reported at line 2', result and not result.e and #d >= 1 and d[1].lnum == 1, vim.inspect({ result, d }))

  api.nvim_buf_set_lines(src, 0, -1, false, { 'x = 1', 'y = (x,)', '' })
  result = nil
  pycell.analyze({ bufnr = src, quiet = true, on_done = function(e, diags, via) result = { e = e, diags = diags, via = via } end })
  wait(20000, function()
    return result ~= nil
  end)
  check('analyze: clean code clears the diagnostics', result and not result.e
    and #vim.diagnostic.get(src, { namespace = pycell.namespaces.analyze }) == 0, vim.inspect(result))

  check('analyze: the server answered through its analyze method', S.analyze_method == true,
    tostring(S.analyze_method))

  -- 5b. Columns on lines with non-ASCII text: the server counts UTF-16 code units, the
  --     buffer bytes ("é" is 2 bytes and 1 unit, the emoji 4 bytes and 2 units).
  local uline = 's = "é😀"; import socket'
  local eline = 't = "é😀" +'
  local socket_col = uline:find('socket', 1, true) - 1 -- 21 bytes; 18 UTF-16 units
  local function analyzed(bufnr, first, last)
    local res
    pycell.analyze({ bufnr = bufnr, line1 = first, line2 = last, quiet = true,
      on_done = function(e, diags, via) res = { e = e, diags = diags, via = via } end })
    wait(20000, function()
      return res ~= nil
    end)
    return res, vim.diagnostic.get(bufnr, { namespace = pycell.namespaces.analyze })
  end
  local function by_code(list, code)
    for _, x in ipairs(list) do
      if x.code == code then
        return x
      end
    end
    return nil
  end
  src = scratch({ 'x = 1', uline, eline })
  result, d = analyzed(src)
  local imp, syn = by_code(d, 'forbidden-import'), by_code(d, 'syntax-error')
  check('utf-16: a forbidden import after "é" and an emoji lands on its byte column',
    result and result.via == 'analyze' and imp and imp.lnum == 1 and imp.col == socket_col
    and imp.end_col == socket_col + #'socket'
    and api.nvim_buf_get_text(src, imp.lnum, imp.col, imp.lnum, imp.end_col, {})[1] == 'socket',
    vim.inspect({ result = result, want_col = socket_col, d = d }))
  check('utf-16: a syntax error at the end of such a line lands at its end', syn and syn.lnum == 2 and syn.col == #eline,
    vim.inspect({ want_col = #eline, d = d }))

  --    The same in an indented range, which is dedented before it is sent.
  local indented = '    ' .. uline
  src = scratch({ 'def f():', indented, '    return s' })
  result, d = analyzed(src, 2, 3)
  imp = by_code(d, 'forbidden-import')
  local want = indented:find('socket', 1, true) - 1
  check('utf-16: in a dedented range, the column counts the stripped indentation',
    imp and imp.lnum == 1 and imp.col == want and imp.end_col == want + #'socket', vim.inspect({ want_col = want, d = d }))

  --    The execute fallback (a server without `analyze`): Python's SyntaxError.offset
  --    counts characters, converted the same way.
  local client = S.client
  local real_request = client.request
  local saved_method = S.analyze_method
  S.analyze_method = nil
  client.request = function(self, method, params, cb)
    if method == 'analyze' then
      vim.schedule(function()
        cb({ code = -32601, message = 'method not found: analyze' }, nil)
      end)
      return true
    end
    return real_request(self, method, params, cb)
  end
  local unmatched = 's = "é😀"; x = )'
  src = scratch({ 'x = 1', unmatched })
  local ok_fallback, fb = pcall(analyzed, src)
  client.request = nil -- back to the method
  S.analyze_method = saved_method
  d = vim.diagnostic.get(src, { namespace = pycell.namespaces.analyze })
  check('utf-16: the execute fallback puts the syntax error on its byte column', ok_fallback and fb and fb.via == 'execute'
    and #d == 1 and d[1].lnum == 1 and d[1].col == unmatched:find(')', 1, true) - 1,
    vim.inspect({ result = fb, want_col = unmatched:find(')', 1, true) - 1, d = d }))

  --    The conversions themselves, both ways, against Neovim's own where it has them.
  local diag = require('pycell.diagnostics')
  local mixed = 'aé😀b\255c' -- "\255" is not UTF-8: one byte, one unit
  local units_to_bytes = { [0] = 0, 1, 3, 3, 7, 8, 9, 10 }
  local conv_ok, conv_detail = true, {}
  for u, b in pairs(units_to_bytes) do
    if diag.byte_col(mixed, u, true) ~= b then
      conv_ok = false
      table.insert(conv_detail, string.format('byte_col(%d) = %d, want %d', u, diag.byte_col(mixed, u, true), b))
    end
  end
  for b, u in pairs({ [0] = 0, [1] = 1, [3] = 2, [7] = 4, [8] = 5, [9] = 6, [10] = 7 }) do
    if diag.char_col(mixed, b, true) ~= u then
      conv_ok = false
      table.insert(conv_detail, string.format('char_col(%d) = %d, want %d', b, diag.char_col(mixed, b, true), u))
    end
  end
  for b, u in pairs({ [0] = 0, [3] = 2, [7] = 3 }) do
    if diag.char_col(mixed, b, false) ~= u or diag.byte_col(mixed, u, false) ~= b then
      conv_ok = false
      table.insert(conv_detail, string.format('characters: byte %d <-> %d', b, u))
    end
  end
  for _, l in ipairs({ uline, indented, 'ascii only', '😀😀x' }) do
    local i = 1
    while i <= #l do
      local byte = i - 1
      local u = diag.char_col(l, byte, true)
      if diag.byte_col(l, u, true) ~= byte then
        conv_ok = false
        table.insert(conv_detail, string.format('round trip %q at byte %d', l, byte))
      end
      if vim.fn.has('nvim-0.11') == 0 then -- the (str, index, use_utf16) signature
        local theirs = vim.str_byteindex(l, u, true)
        local _, theirs_u = vim.str_utfindex(l, byte)
        if theirs ~= byte or theirs_u ~= u then
          conv_ok = false
          table.insert(conv_detail, string.format('Neovim disagrees on %q at byte %d', l, byte))
        end
      end
      i = i + #vim.fn.strcharpart(l:sub(i), 0, 1)
    end
  end
  check('utf-16: byte <-> UTF-16 and character columns, both ways', conv_ok, table.concat(conv_detail, '; '))

  -- 5c. Sessions through the Lua API (as the README shows): globals survive between runs.
  local sess = {}
  local c = pycell.client()
  c:request('session/create', { profile = 'default' }, function(e1, r1)
    sess.create = e1 or r1
    if e1 then
      sess.done = true
      return
    end
    c:request('execute', { code = 'n = 41', session = r1.session }, function()
      c:request('execute', { code = 'n + 1', session = r1.session }, function(e2, r2)
        sess.value = r2 and r2.value
        c:request('session/close', { session = r1.session }, function(e3, r3)
          sess.closed = not e3 and r3 and r3.closed
          sess.done = true
        end)
      end)
    end)
  end)
  wait(30000, function()
    return sess.done
  end)
  check('session: state kept between two runs, then closed', sess.value == 42 and sess.closed == true, vim.inspect(sess))

  -- 5d. JavaScript: a buffer whose filetype is javascript runs with Node in the javascript
  --     profile; its errors and analysis land on the buffer's lines like Python's.
  scratch({ "console.log('hello from node');", '6 * 7' }, 'javascript')
  run = run_and_wait('PycellRun')
  lines = output.get_lines()
  check('javascript: status ok', run and run.status == 'ok', run and (tostring(run.status) .. ' ' .. vim.inspect(run.err or run.result)))
  check('javascript: runs in the javascript profile', run and run.profile == 'javascript' and run.language == 'javascript'
    and find(lines, '| profile javascript |', true), vim.inspect(lines))
  check('javascript: output and value', find(lines, '^hello from node$') and find(lines, 'value: 42', true), vim.inspect(lines))

  src = scratch({ 'const a = 1;', 'const o = null;', 'o.x;' }, 'javascript')
  run = run_and_wait('PycellRun')
  d = vim.diagnostic.get(src, { namespace = pycell.namespaces.run })
  check('javascript: a TypeError becomes a diagnostic at line 3', run and run.status == 'error' and #d == 1 and d[1].lnum == 2
    and d[1].message:find('TypeError', 1, true), vim.inspect({ status = run and run.status, d = d }))

  src = scratch({ 'const a = 1;', 'let = = 2;' }, 'javascript')
  result = nil
  pycell.analyze({ bufnr = src, quiet = true, on_done = function(e, diags, via) result = { e = e, diags = diags, via = via } end })
  wait(20000, function()
    return result ~= nil
  end)
  d = vim.diagnostic.get(src, { namespace = pycell.namespaces.analyze })
  local js_error = false
  for _, x in ipairs(d) do
    js_error = js_error or x.severity == vim.diagnostic.severity.ERROR
  end
  check('javascript: analyze reports the syntax error', result and not result.e and result.via == 'analyze' and js_error,
    vim.inspect({ result = result, d = d }))

  scratch({ 'const x: number = 1;' }, 'typescript')
  n_msgs = #messages
  check('javascript: another filetype is refused with a message', pycell.run({}) == nil and #messages > n_msgs
    and messages[#messages].msg:find('runs Python and JavaScript buffers; this one is typescript', 1, true),
    vim.inspect(messages[#messages]))

  -- 6. Status.
  n_msgs = #messages
  vim.cmd('PycellStatus')
  wait(10000, function()
    return #messages > n_msgs
  end)
  local msg = messages[n_msgs + 1] and messages[n_msgs + 1].msg or ''
  check('status: :PycellStatus reports isolation and pools', msg:find('isolation', 1, true) and msg:find('pool default', 1, true), msg)
  local sres
  pycell.status(function(e, r) sres = { e = e, r = r } end)
  wait(10000, function()
    return sres ~= nil
  end)
  local has_default = false
  for _, p in ipairs(sres and sres.r and sres.r.pools or {}) do
    has_default = has_default or p.profile == 'default'
  end
  check('status: result has running, queued and the default pool', sres and not sres.e and type(sres.r.running) == 'number'
    and type(sres.r.queued) == 'number' and has_default, vim.inspect(sres))

  -- 7. Stop: shutdown + exit, exit code 0.
  client = S.client
  pycell.stop()
  check('stop: server exited with code 0 after shutdown and exit', client.state == 'exited' and client.exit_code == 0,
    string.format('state=%s code=%s', tostring(client.state), tostring(client.exit_code)))
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  check('test script ran without a Lua error', false, err)
end
finish()
