//go:build !amd64 || purego

package native

const hasAVX512 = false

// No assembly kernels here: products run gemmGo.
var kernelsAVX2, kernelsAVX512 kernelTable
