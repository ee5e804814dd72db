//go:build !amd64 || purego

package native

const hasAVX2 = false

func dot4AVX2(x, w *float32, stride, n int, out *[4]float32) {
	panic("native: no AVX2 kernel on this platform")
}

func axpyAVX2(a float32, x, y *float32, n int) { panic("native: no AVX2 kernel on this platform") }
