//go:build amd64 && !purego

#include "textflag.h"

// func dot4AVX2(x, w *float32, stride, n int, out *[4]float32)
//
// out[i] = Σ_{k<n} x[k]·w[i·stride+k] for i < 4, n a multiple of 16.
// Two sets of four 8-lane FMA accumulators (even and odd 8-float chunks of
// k) hide the FMA latency; at the end each row's two accumulators are added,
// the high 128 bits folded onto the low, and the four lanes summed as
// (l0+l1)+(l2+l3) by two horizontal adds. Every output element goes through
// exactly this sequence whatever the row's neighbours, so results do not
// depend on how rows are grouped (stride 0 computes one row four times).
TEXT ·dot4AVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ stride+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	SHLQ $2, R8
	LEAQ (DI)(R8*1), R9
	LEAQ (R9)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	SHLQ $2, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ AX, AX

loop:
	CMPQ AX, CX
	JGE  reduce
	VMOVUPS (SI)(AX*1), Y8
	VMOVUPS 32(SI)(AX*1), Y9
	VFMADD231PS (DI)(AX*1), Y8, Y0
	VFMADD231PS (R9)(AX*1), Y8, Y1
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS (R11)(AX*1), Y8, Y3
	VFMADD231PS 32(DI)(AX*1), Y9, Y4
	VFMADD231PS 32(R9)(AX*1), Y9, Y5
	VFMADD231PS 32(R10)(AX*1), Y9, Y6
	VFMADD231PS 32(R11)(AX*1), Y9, Y7
	ADDQ $64, AX
	JMP  loop

reduce:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	VEXTRACTF128 $1, Y0, X4
	VEXTRACTF128 $1, Y1, X5
	VEXTRACTF128 $1, Y2, X6
	VEXTRACTF128 $1, Y3, X7
	VADDPS X4, X0, X0
	VADDPS X5, X1, X1
	VADDPS X6, X2, X2
	VADDPS X7, X3, X3
	VHADDPS X1, X0, X0
	VHADDPS X3, X2, X2
	VHADDPS X2, X0, X0
	VMOVUPS X0, (DX)
	VZEROUPPER
	RET

// func axpyAVX2(a float32, x, y *float32, n int)
//
// y[k] += a·x[k] for k < n, n a multiple of 8, one fused multiply-add per
// element.
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS a+0(FP), Y0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

aloop:
	CMPQ AX, CX
	JGE  adone
	VMOVUPS (DI)(AX*1), Y1
	VFMADD231PS (SI)(AX*1), Y0, Y1
	VMOVUPS Y1, (DI)(AX*1)
	ADDQ $32, AX
	JMP  aloop

adone:
	VZEROUPPER
	RET

// func dot3x2AVX2(x0, x1, w *float32, stride, n int, out *[6]float32)
//
// out[i] = Σ_{k<n} x0[k]·w[i·stride+k] and out[3+i] = Σ x1[k]·w[i·stride+k]
// for i < 3, n a multiple of 16: three weight rows against two activation
// rows, each weight chunk loaded once for both. Per element the arithmetic is
// dot4AVX2's exactly — even and odd 8-float chunks in two FMA chains, added,
// high half folded onto the low, lanes summed (l0+l1)+(l2+l3) — so the two
// kernels can share a product and give the same bits.
TEXT ·dot3x2AVX2(SB), NOSPLIT, $0-48
	MOVQ x0+0(FP), SI
	MOVQ x1+8(FP), BX
	MOVQ w+16(FP), DI
	MOVQ stride+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	SHLQ $2, R8
	LEAQ (DI)(R8*1), R9
	LEAQ (R9)(R8*1), R10
	SHLQ $2, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	XORQ AX, AX

loop32:
	CMPQ AX, CX
	JGE  reduce32
	VMOVUPS (SI)(AX*1), Y12
	VMOVUPS (BX)(AX*1), Y13
	VMOVUPS (DI)(AX*1), Y14
	VFMADD231PS Y14, Y12, Y0
	VFMADD231PS Y14, Y13, Y3
	VMOVUPS (R9)(AX*1), Y14
	VFMADD231PS Y14, Y12, Y1
	VFMADD231PS Y14, Y13, Y4
	VMOVUPS (R10)(AX*1), Y14
	VFMADD231PS Y14, Y12, Y2
	VFMADD231PS Y14, Y13, Y5
	VMOVUPS 32(SI)(AX*1), Y12
	VMOVUPS 32(BX)(AX*1), Y13
	VMOVUPS 32(DI)(AX*1), Y14
	VFMADD231PS Y14, Y12, Y6
	VFMADD231PS Y14, Y13, Y9
	VMOVUPS 32(R9)(AX*1), Y14
	VFMADD231PS Y14, Y12, Y7
	VFMADD231PS Y14, Y13, Y10
	VMOVUPS 32(R10)(AX*1), Y14
	VFMADD231PS Y14, Y12, Y8
	VFMADD231PS Y14, Y13, Y11
	ADDQ $64, AX
	JMP  loop32

reduce32:
	VADDPS Y6, Y0, Y0
	VADDPS Y7, Y1, Y1
	VADDPS Y8, Y2, Y2
	VADDPS Y9, Y3, Y3
	VADDPS Y10, Y4, Y4
	VADDPS Y11, Y5, Y5
	VEXTRACTF128 $1, Y0, X6
	VEXTRACTF128 $1, Y1, X7
	VEXTRACTF128 $1, Y2, X8
	VEXTRACTF128 $1, Y3, X9
	VEXTRACTF128 $1, Y4, X10
	VEXTRACTF128 $1, Y5, X11
	VADDPS X6, X0, X0
	VADDPS X7, X1, X1
	VADDPS X8, X2, X2
	VADDPS X9, X3, X3
	VADDPS X10, X4, X4
	VADDPS X11, X5, X5
	// out[0..3] = x0·w0, x0·w1, x0·w2, x1·w0
	VHADDPS X1, X0, X0
	VHADDPS X3, X2, X2
	VHADDPS X2, X0, X0
	VMOVUPS X0, (DX)
	// out[4..5] = x1·w1, x1·w2
	VHADDPS X5, X4, X4
	VHADDPS X4, X4, X4
	VMOVSD X4, 16(DX)
	VZEROUPPER
	RET
