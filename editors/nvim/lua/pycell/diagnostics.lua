-- pycell.diagnostics: turn what the server reports into vim.diagnostic entries.
-- `src` describes where the code came from in the buffer (see pycell.init's source()):
--   offset      0-based buffer line of the code's first line
--   indent      columns stripped from each line (a dedented range)
--   line_count  lines in the buffer, to clamp positions that point past the end
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
    col = src.indent or 0,
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
        col = math.max((num(item.col) or 1) - 1, 0) + (src.indent or 0),
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
    table.insert(out, {
      lnum = lnum,
      col = (num(s.character) or 0) + (src.indent or 0),
      end_lnum = end_lnum,
      end_col = (num(e.character) or num(s.character) or 0) + (src.indent or 0),
      severity = num(d.severity) or severity.ERROR,
      source = type(d.source) == 'string' and d.source or 'pycell',
      code = code,
      message = tostring(d.message or ''),
    })
  end
  return out
end

return M
