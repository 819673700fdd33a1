'use strict';
// Placeholder: replaced by the full analyzer.
function _analyzeMain(inputs) { return []; }
