/* SPDX-License-Identifier: MIT */
/*
 * switch_x86_64.S - switch_context() for x86-64 System V, and co_yield's
 * frame (at the end); the contract and
 * the saved-frame layout are in switch.h.  Six pushes, one store, one load,
 * six pops, a move of the resumer's third argument into the return value
 * and a return: no system call, no signal mask, no FPU state.
 */
	.text
	.p2align 4
	.globl	switch_context
	.hidden	switch_context
	.type	switch_context, @function
switch_context:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	movq	%rdx, %rax
	ret
	.cfi_endproc
	.size	switch_context, .-switch_context

/*
 * First code a fresh context runs: switch_init_stack planted the C entry in
 * r13 and its argument in r12; rsp is 16-byte aligned here, so the call
 * gives the entry the ABI's alignment.  rbp is 0: the frame chain ends.
 */
	.p2align 4
	.globl	switch_trampoline
	.hidden	switch_trampoline
	.type	switch_trampoline, @function
switch_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	switch_trampoline, .-switch_trampoline
	/* The profiler hides return addresses within 16 bytes of the
	 * trampoline (prof_pc_is_entry); the next function starts 16-byte
	 * aligned, so nothing else falls in that window. */
	.if	(. - switch_trampoline) > 16
	.error	"switch_trampoline outgrew the profiler's 16-byte window"
	.endif

/*
 * co_yield: a frame around sched_yield_task that returns with an indirect
 * jump instead of ret.  A yield usually returns into the caller of
 * another task, at another call site: the return predictor, which holds
 * this task's caller, is then wrong every time, about 5 ns here.  The
 * indirect-branch predictor keys on the path that led to the jump, which
 * differs per task, and learns where each yield goes back to.  The cost:
 * each yield leaves the return-stack entry its caller's call pushed, so
 * once a task has yielded as many times as that stack holds (16-32), up
 * to that many of its later returns that unwind below the yield loop
 * mispredict, once each.  The frame (push rbp) keeps the frame-pointer
 * chain whole for the profiler: without it a walk would skip the function
 * that called co_yield.  Not CET-ready: the jump lands on no endbr64 and
 * unbalances a shadow stack, which switch_context rules out anyway; this
 * file must not get a .note.gnu.property claiming IBT or SHSTK.
 */
	.p2align 4
	.globl	co_yield
	.type	co_yield, @function
co_yield:
	.cfi_startproc
	pushq	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset rbp, -16
	movq	%rsp, %rbp
	.cfi_def_cfa_register rbp
	callq	sched_yield_task
	popq	%rbp
	.cfi_def_cfa rsp, 8
	.cfi_restore rbp
	popq	%rcx
	.cfi_def_cfa_offset 0
	.cfi_register rip, rcx
	jmpq	*%rcx
	.cfi_endproc
	.size	co_yield, .-co_yield

	.section .note.GNU-stack,"",@progbits
