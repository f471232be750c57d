/* ---------------- monitor-page probe (t8) ---------------- */
	.globl u_rw
u_rw:                           /* r8 = address: read, +1, write back, lock xadd, done */
	mov rax, [r8]
	add rax, 1
	mov [r8], rax
	mov rcx, 1
	lock xadd [r8 + 8], rcx
	mov byte ptr [0x7FF000EF], al
	jmp .

	.globl u_callloop
u_callloop:                     /* r8 = target, r9 = count */
1:	call r8
	dec r9
	jnz 1b
	mov byte ptr [0x7FF000EF], al
	jmp .

	.globl u_pushret_loop
u_pushret_loop:                 /* r9 = count: push imm32 (0xffffffffffe00100); ret */
1:	lea rax, [rip + 2f]
	push rax
	push -0x1fff00
	ret
2:	dec r9
	jnz 1b
	mov byte ptr [0x7FF000EF], al
	jmp .

	.globl u_localret
u_localret:
	ret

