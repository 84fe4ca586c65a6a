/* SPDX-License-Identifier: MIT */
/*
 * switch_aarch64.S - switch_context() for AArch64 (AAPCS64), and co_yield's
 * frame (at the end); the contract is
 * in switch.h.  Saves x19-x28, d8-d15, fp and lr (22 words); the fp/lr pair
 * sits at SWITCH_FRAME_OFFSET so a frame-pointer walk can start there.
 * Untested on this project's x86-64 machines: kept so the arch interface has
 * its second implementation to keep it honest.
 */
	.text
	.p2align 4
	.globl	switch_context
	.hidden	switch_context
	.type	switch_context, %function
switch_context:
	sub	sp, sp, #176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	d8, d9, [sp, #80]
	stp	d10, d11, [sp, #96]
	stp	d12, d13, [sp, #112]
	stp	d14, d15, [sp, #128]
	str	xzr, [sp, #144]
	stp	x29, x30, [sp, #160]
	mov	x9, sp
	str	x9, [x0]
	ldr	x9, [x1]
	mov	sp, x9
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	d8, d9, [sp, #80]
	ldp	d10, d11, [sp, #96]
	ldp	d12, d13, [sp, #112]
	ldp	d14, d15, [sp, #128]
	ldp	x29, x30, [sp, #160]
	add	sp, sp, #176
	mov	x0, x2
	ret
	.size	switch_context, .-switch_context

	.p2align 4
	.globl	switch_trampoline
	.hidden	switch_trampoline
	.type	switch_trampoline, %function
switch_trampoline:
	mov	x0, x19
	blr	x20
	brk	#0
	.size	switch_trampoline, .-switch_trampoline
	/* The profiler hides return addresses within 16 bytes of the
	 * trampoline (prof_pc_is_entry); the next function starts 16-byte
	 * aligned, so nothing else falls in that window. */
	.if	(. - switch_trampoline) > 16
	.error	"switch_trampoline outgrew the profiler's 16-byte window"
	.endif

/*
 * co_yield: the frame around sched_yield_task (see switch_x86_64.S).  It
 * returns with ret, not br x30: the return predictor then misses on most
 * yields, but a br to a return address would fault in any caller built
 * with BTI (-mbranch-protection), whose return sites carry no landing pad.
 */
	.p2align 4
	.globl	co_yield
	.type	co_yield, %function
co_yield:
	.cfi_startproc
	stp	x29, x30, [sp, #-16]!
	.cfi_def_cfa_offset 16
	.cfi_offset x29, -16
	.cfi_offset x30, -8
	mov	x29, sp
	.cfi_def_cfa x29, 16
	bl	sched_yield_task
	ldp	x29, x30, [sp], #16
	.cfi_def_cfa sp, 0
	.cfi_restore x29
	.cfi_restore x30
	ret
	.cfi_endproc
	.size	co_yield, .-co_yield

	.section .note.GNU-stack,"",%progbits
