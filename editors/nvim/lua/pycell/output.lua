-- pycell.output: the one scratch buffer that shows runs, and the split that shows it.
local api = vim.api

local M = {}

M.BUFNAME = 'pycell://output'
local hl_ns = api.nvim_create_namespace('pycell.output')

local state = {
  buf = nil,
  partial = false, -- the last line was written without its newline yet
}

local function valid(buf)
  return buf ~= nil and api.nvim_buf_is_valid(buf)
end

--- The output buffer (created on first use, then reused).
function M.buffer()
  if valid(state.buf) then
    if not api.nvim_buf_is_loaded(state.buf) then
      vim.fn.bufload(state.buf)
    end
    return state.buf
  end
  local buf = api.nvim_create_buf(false, true)
  pcall(api.nvim_buf_set_name, buf, M.BUFNAME)
  api.nvim_buf_set_option(buf, 'buftype', 'nofile')
  api.nvim_buf_set_option(buf, 'bufhidden', 'hide')
  api.nvim_buf_set_option(buf, 'swapfile', false)
  api.nvim_buf_set_option(buf, 'filetype', 'pycell-output')
  api.nvim_buf_set_option(buf, 'modifiable', false)
  api.nvim_buf_set_keymap(buf, 'n', 'q', '<cmd>close<CR>', { nowait = true, silent = true, noremap = true })
  state.buf = buf
  state.partial = false
  return buf
end

function M.is_output(buf)
  return valid(state.buf) and (buf == state.buf or (buf == 0 and api.nvim_get_current_buf() == state.buf))
end

local function windows()
  local buf = state.buf
  local wins = {}
  if not valid(buf) then
    return wins
  end
  for _, win in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_buf(win) == buf then
      table.insert(wins, win)
    end
  end
  return wins
end

--- Show the buffer in a split of the current tab page unless one already shows it.
function M.show(opts)
  opts = opts or {}
  local buf = M.buffer()
  for _, win in ipairs(api.nvim_tabpage_list_wins(0)) do
    if api.nvim_win_get_buf(win) == buf then
      return win
    end
  end
  local prev = api.nvim_get_current_win()
  local cmd = string.format('%s %s%dsplit', opts.split or 'botright', opts.vertical and 'vertical ' or '', opts.size or 12)
  vim.cmd(cmd)
  local win = api.nvim_get_current_win()
  api.nvim_win_set_buf(win, buf)
  api.nvim_win_set_option(win, 'number', false)
  api.nvim_win_set_option(win, 'relativenumber', false)
  api.nvim_win_set_option(win, 'signcolumn', 'no')
  api.nvim_win_set_option(win, 'wrap', true)
  api.nvim_win_set_option(win, opts.vertical and 'winfixwidth' or 'winfixheight', true)
  if not opts.focus and api.nvim_win_is_valid(prev) then
    api.nvim_set_current_win(prev)
  end
  return win
end

local function write(fn)
  local buf = M.buffer()
  api.nvim_buf_set_option(buf, 'modifiable', true)
  local ok, e = pcall(fn, buf)
  api.nvim_buf_set_option(buf, 'modifiable', false)
  if not ok then
    error(e)
  end
  -- Follow the output in windows the cursor is not in.
  local cur = api.nvim_get_current_win()
  local last = api.nvim_buf_line_count(buf)
  for _, win in ipairs(windows()) do
    if win ~= cur then
      pcall(api.nvim_win_set_cursor, win, { last, 0 })
    end
  end
end

local function highlight(buf, first, last, group)
  if not group then
    return
  end
  for l = first, last do
    api.nvim_buf_add_highlight(buf, hl_ns, group, l, 0, -1)
  end
end

--- Replace the whole buffer with `lines` (a new run starts).
function M.begin(lines, show_opts)
  write(function(buf)
    api.nvim_buf_clear_namespace(buf, hl_ns, 0, -1)
    api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    highlight(buf, 0, #lines - 1, 'Title')
  end)
  state.partial = false
  M.show(show_opts)
end

--- Append program output as it streams: `text` may hold several lines or part of one.
--- stream: 'stdout' or 'stderr' (stderr is highlighted).
function M.append(text, stream)
  if type(text) ~= 'string' or text == '' then
    return
  end
  text = text:gsub('\r\n', '\n')
  local lines = vim.split(text, '\n', { plain = true })
  local ends_with_newline = lines[#lines] == ''
  if ends_with_newline then
    table.remove(lines)
  end
  if #lines == 0 then
    state.partial = false
    return
  end
  write(function(buf)
    local count = api.nvim_buf_line_count(buf)
    local first
    if state.partial then
      local cur = api.nvim_buf_get_lines(buf, count - 1, count, false)[1] or ''
      lines[1] = cur .. lines[1]
      api.nvim_buf_set_lines(buf, count - 1, count, false, lines)
      first = count - 1
    else
      api.nvim_buf_set_lines(buf, count, count, false, lines)
      first = count
    end
    highlight(buf, first, first + #lines - 1, stream == 'stderr' and 'WarningMsg' or nil)
  end)
  state.partial = not ends_with_newline
end

--- Append whole lines (the run's summary), after any unfinished output line.
function M.lines(lines, group)
  if #lines == 0 then
    return
  end
  write(function(buf)
    local count = api.nvim_buf_line_count(buf)
    api.nvim_buf_set_lines(buf, count, count, false, lines)
    highlight(buf, count, count + #lines - 1, group)
  end)
  state.partial = false
end

--- The buffer's current text, one string per line.
function M.get_lines()
  if not valid(state.buf) then
    return {}
  end
  return api.nvim_buf_get_lines(state.buf, 0, -1, false)
end

return M
