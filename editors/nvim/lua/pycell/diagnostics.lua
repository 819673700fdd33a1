-- pycell.diagnostics: turn what the server reports into vim.diagnostic entries.
-- `src` describes where the code came from in the buffer (see pycell.init's source()):
--   offset      0-based buffer line of the code's first line
--   indent      bytes stripped from each line (a dedented range)
--   stripped    bytes stripped from each line of the code, by 1-based code line, when it
--               differs from line to line (optional; `indent` otherwise)
--   lines       the code's lines as sent (optional): columns are converted on them
--   line_count  lines in the buffer, to clamp positions that point past the end
--
-- Columns: the server counts `character` in UTF-16 code units (LSP's default position
-- encoding: an emoji counts two), Python's SyntaxError.offset counts characters, and
-- vim.diagnostic wants byte columns. The conversions below work on any Neovim from 0.7 on
-- (vim.str_byteindex changed its signature in 0.11), and take a line that is not valid
-- UTF-8 a byte at a time.
local M = {}

local severity = vim.diagnostic.severity

-- The analyzer run in the sandbox when the server has no `analyze` method.
M.ANALYZER = table.concat({
  'import ast, json',
  'try:',
  " ast.parse(inputs['code'])",
  ' result = []',
  'except SyntaxError as e:',
  " result = [{'line': e.lineno, 'col': e.offset, 'message': e.msg}]",
}, '\n')

local function num(v)
  if type(v) == 'number' then
    return v
  end
  return nil
end

-- The UTF-8 sequence starting at byte i of s: its length in bytes and in UTF-16 code units.
-- A byte that does not start a well-formed sequence counts as one byte and one unit.
local function char_at(s, i)
  local b = s:byte(i)
  local len
  if b < 0x80 then
    return 1, 1
  elseif b >= 0xF0 and b <= 0xF4 then
    len = 4
  elseif b >= 0xE0 then
    len = b <= 0xEF and 3 or 1
  elseif b >= 0xC2 then
    len = 2
  else
    return 1, 1
  end
  if len == 1 then
    return 1, 1
  end
  for k = i + 1, i + len - 1 do
    local c = s:byte(k)
    if not c or c < 0x80 or c > 0xBF then
      return 1, 1
    end
  end
  return len, len == 4 and 2 or 1
end

--- The 0-based byte column of `line` at index `idx`, counted in UTF-16 code units
--- (utf16 true) or in characters (code points). An index inside a character (the second
--- half of a surrogate pair) gives that character's first byte; past the end, #line.
function M.byte_col(line, idx, utf16)
  idx = num(idx) or 0
  if type(line) ~= 'string' or idx <= 0 then
    return math.max(idx, 0)
  end
  local i, n, units = 1, #line, 0
  while i <= n do
    local len, width = char_at(line, i)
    if not utf16 then
      width = 1
    end
    if units + width > idx then
      return i - 1
    end
    units = units + width
    i = i + len
  end
  return n
end

--- The other way: the index, in UTF-16 code units (utf16 true) or characters, of the
--- 0-based byte column `col` of `line` (a column inside a character counts that whole
--- character as before it). For the positions a client sends the server.
function M.char_col(line, col, utf16)
  col = num(col) or 0
  if type(line) ~= 'string' or col <= 0 then
    return math.max(col, 0)
  end
  local i, n, units = 1, math.min(col, #line), 0
  while i <= n do
    local len, width = char_at(line, i)
    units = units + (utf16 and width or 1)
    i = i + len
  end
  return units + math.max(col - #line, 0)
end

-- The byte column in the buffer of column `idx` (UTF-16 units or characters) of the
-- code's 1-based line `line`: converted on the line as sent, then shifted by what the
-- dedent stripped from it.
local function buffer_col(src, line, idx, utf16)
  line = math.max(num(line) or 1, 1)
  local text = src.lines and src.lines[line]
  local stripped = src.stripped and src.stripped[line] or src.indent or 0
  return stripped + M.byte_col(text, idx, utf16)
end

-- A 1-based line in the code to a 0-based buffer line, clamped to the buffer.
local function buffer_line(src, line)
  local lnum = src.offset + math.max((num(line) or 1) - 1, 0)
  if src.line_count and src.line_count > 0 then
    lnum = math.min(lnum, src.line_count - 1)
  end
  return lnum
end

--- The `error` of an execute result (with a 1-based `line`) as one diagnostic, or nil.
function M.from_execute_error(e, src)
  if type(e) ~= 'table' or not num(e.line) then
    return nil
  end
  local message = e.type and e.type ~= vim.NIL and (e.type .. ': ' .. tostring(e.message or '')) or tostring(e.message)
  return {
    lnum = buffer_line(src, e.line),
    col = buffer_col(src, e.line, 0, true),
    severity = severity.ERROR,
    source = 'pycell',
    code = e.type ~= vim.NIL and e.type or nil,
    message = message,
  }
end

--- The fallback analyzer's value, [{line, col, message}] with 1-based line and col.
function M.from_syntax_list(list, src)
  local out = {}
  if type(list) ~= 'table' then
    return out
  end
  for _, item in ipairs(list) do
    if type(item) == 'table' then
      table.insert(out, {
        lnum = buffer_line(src, item.line),
        -- SyntaxError.offset is 1-based, in characters.
        col = buffer_col(src, item.line, math.max((num(item.col) or 1) - 1, 0), false),
        severity = severity.ERROR,
        source = 'pycell',
        code = 'SyntaxError',
        message = tostring(item.message ~= vim.NIL and item.message or 'syntax error'),
      })
    end
  end
  return out
end

--- The `analyze` method's diagnostics, in LSP's shape (0-based range, severity 1..4,
--- the same numbering as vim.diagnostic.severity).
function M.from_lsp(list, src)
  local out = {}
  if type(list) ~= 'table' then
    return out
  end
  for _, d in ipairs(list) do
    local r = type(d.range) == 'table' and d.range or {}
    local s = type(r.start) == 'table' and r.start or {}
    local e = type(r['end']) == 'table' and r['end'] or s
    local lnum = buffer_line(src, (num(s.line) or 0) + 1)
    local end_lnum = buffer_line(src, (num(e.line) or num(s.line) or 0) + 1)
    local code = d.code
    if code == vim.NIL then
      code = nil
    end
    local sline = (num(s.line) or 0) + 1
    local eline = (num(e.line) or num(s.line) or 0) + 1
    table.insert(out, {
      lnum = lnum,
      col = buffer_col(src, sline, num(s.character) or 0, true),
      end_lnum = end_lnum,
      end_col = buffer_col(src, eline, num(e.character) or num(s.character) or 0, true),
      severity = num(d.severity) or severity.ERROR,
      source = type(d.source) == 'string' and d.source or 'pycell',
      code = code,
      message = tostring(d.message or ''),
    })
  end
  return out
end

return M
