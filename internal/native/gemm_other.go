//go:build !amd64 || purego

package native

const hasAVX512 = false

// No assembly kernels here: products run gemmGo.
var kernelsAVX2, kernelsAVX512 kernelTable

func fmaPeakAVX2(n int)   { panic("native: no AVX2 on this platform") }
func fmaPeakAVX512(n int) { panic("native: no AVX-512 on this platform") }
func addChain(n int)      { panic("native: no assembly on this platform") }
