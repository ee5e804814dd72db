// Package codecheck holds tests of the tree's own shape, the rules a
// contributor would otherwise have to remember: no function over 80 lines
// outside tests, no package named like a standard-library package, no two
// packages sharing a name. It has no code of its own.
package codecheck
