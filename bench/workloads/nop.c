// SPDX-License-Identifier: GPL-2.0
/* nop: the program forkexec executes (static, so exec cost is the kernel's, not the dynamic loader's) */
int main(void)
{
	return 0;
}
