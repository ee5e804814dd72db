//go:build amd64 && !purego

package native

import "golang.org/x/sys/cpu"

// hasAVX2 says whether the AVX2+FMA kernel can run here.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// hasAVX512 says whether the AVX-512 kernels can run here (x/sys/cpu also
// checks that the OS saves the ZMM registers).
var hasAVX512 = cpu.X86.HasAVX512F && hasAVX2

//go:noescape
func dot4AVX2(x, w *float32, stride, n int, out *[4]float32)

//go:noescape
func axpyAVX2(a float32, x, y *float32, n int)
