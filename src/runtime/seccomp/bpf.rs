//! Assembles a [`Plan`] into the classic BPF program `seccomp(2)` runs on every system call.
//!
//! ```text
//!     ld   [arch]
//!     jeq  AUDIT_ARCH_<native>, 1, 0
//!     ret  KILL_PROCESS              ; another ABI: i386 or x32 on x86_64, arm32 on aarch64
//!     ld   [nr]
//!     jset 0x40000000, 0, 1          ; x86_64 only: the x32 ABI
//!     ret  KILL_PROCESS
//!     jgt  HIGHEST, 0, 1             ; if the plan has one
//!     ret  ERRNO(ENOSYS)
//!     jge  PIVOT, 0, 1               ; a binary search over the numbers with rules:
//!     ja   <high half>               ;   split in two at each level,
//!     …                              ;   down to runs of a few, matched one by one:
//!     jeq  NR, 0, <block length>
//!       <rule> ret ACTION …          ;   argument-dependent rules, in order
//!       ret  OTHERWISE               ;   no rule matched
//!     ret  DEFAULT                   ;   a number without rules, at the end of each run
//! ```
//!
//! Argument comparisons are seccompiler's ([`SeccompRule`]): a rule's code falls through to
//! the instruction after it when every comparison holds, and jumps past that instruction
//! (the rule's `ret`) when one does not. Only the native ABI is filtered: seccompiler has no
//! system call tables for the 32-bit ones, so a call through them kills the process, as
//! libseccomp does for an architecture a filter does not cover.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCondition, SeccompRule, sock_filter,
};

use super::plan::{Decision, Plan};
use super::profile::ArgCheck;

// Classic BPF opcodes (`linux/bpf_common.h`) and `struct seccomp_data` offsets.
/// `BPF_LD | BPF_W | BPF_ABS`: load a 32-bit word of `seccomp_data`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JA`: jump forward by `k`.
const BPF_JMP_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JMP_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGT | BPF_K`.
const BPF_JMP_JGT_K: u16 = 0x25;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const BPF_JMP_JGE_K: u16 = 0x35;
/// `BPF_JMP | BPF_JSET | BPF_K`: jump if `A & k != 0`.
const BPF_JMP_JSET_K: u16 = 0x45;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
/// `BPF_MAXINSNS`: the longest program the kernel accepts.
const MAX_INSTRUCTIONS: usize = 4096;

/// Builds the program for a plan; the error says why it cannot be built.
pub fn assemble(plan: &Plan) -> Result<BpfProgram, String> {
    let mut program = prologue(plan);
    let blocks = plan
        .syscalls
        .iter()
        .map(|(&number, decision)| Ok((number, decision_block(decision, &plan.default_action)?)))
        .collect::<Result<Vec<_>, String>>()?;
    program.extend(search(&blocks, &plan.default_action));
    if program.len() > MAX_INSTRUCTIONS {
        return Err(format!(
            "the filter has {} BPF instructions; the kernel accepts at most {MAX_INSTRUCTIONS}",
            program.len()
        ));
    }
    Ok(program)
}

/// Checks the ABI and the ENOSYS threshold, and leaves the system call number loaded.
fn prologue(plan: &Plan) -> Vec<sock_filter> {
    let kill = ret(&SeccompAction::KillProcess);
    let mut program = vec![
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        jump(BPF_JMP_JEQ_K, plan.arch.audit_arch(), 1, 0),
        kill.clone(),
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR),
    ];
    if let Some(bits) = plan.arch.foreign_abi_bits() {
        program.extend([jump(BPF_JMP_JSET_K, bits, 0, 1), kill]);
    }
    if let Some(highest) = plan.enosys_above {
        let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
        program.extend([jump(BPF_JMP_JGT_K, highest, 0, 1), ret(&enosys)]);
    }
    program
}

/// Runs of at most this many system calls are matched one after the other; longer ones are
/// split in two by a comparison.
const LINEAR_RUN: usize = 4;

/// The code that finds the block of the loaded system call number among `blocks` (ascending
/// by number) by binary search, and returns `default` for a number not among them. Every path
/// ends in a `ret`.
///
/// A binary search, not a list: a call is decided in about log2(n) comparisons instead of n/2
/// (Docker's profile lists some 350), and the kernel, which emulates the filter for every
/// system call number when it is installed (to cache the calls always allowed), does that
/// work once per level instead of once per entry.
fn search(blocks: &[(u32, Vec<sock_filter>)], default: &SeccompAction) -> Vec<sock_filter> {
    if blocks.len() <= LINEAR_RUN {
        let mut code = Vec::new();
        for (number, block) in blocks {
            code.extend(dispatch(*number, block.len()));
            code.extend(block.iter().cloned());
        }
        code.push(ret(default));
        return code;
    }
    let (low, high) = blocks.split_at(blocks.len() / 2);
    let pivot = high[0].0;
    let low = search(low, default);
    let high = search(high, default);
    // `jge` to a `ja` over the low half: conditional jumps reach only 255 instructions.
    let mut code = vec![
        jump(BPF_JMP_JGE_K, pivot, 0, 1),
        stmt(BPF_JMP_JA, low.len() as u32),
    ];
    code.extend(low);
    code.extend(high);
    code
}

/// Enters the next `block_len` instructions if the loaded number is `number`, else skips them.
fn dispatch(number: u32, block_len: usize) -> Vec<sock_filter> {
    match u8::try_from(block_len) {
        Ok(skip) => vec![jump(BPF_JMP_JEQ_K, number, 0, skip)],
        // Conditional jumps reach 255 instructions; `ja` reaches further.
        Err(_) => vec![
            jump(BPF_JMP_JEQ_K, number, 1, 0),
            stmt(BPF_JMP_JA, block_len as u32),
        ],
    }
}

/// The code that decides one system call. Every path ends in a `ret`.
fn decision_block(
    decision: &Decision,
    default_action: &SeccompAction,
) -> Result<Vec<sock_filter>, String> {
    let mut block = Vec::new();
    for (checks, action) in &decision.conditional {
        block.extend(comparisons(checks)?);
        block.push(ret(action));
    }
    block.push(ret(decision.otherwise.as_ref().unwrap_or(default_action)));
    Ok(block)
}

/// seccompiler's code for "all of these comparisons hold".
fn comparisons(checks: &[ArgCheck]) -> Result<BpfProgram, String> {
    let conditions = checks
        .iter()
        .map(|check| {
            SeccompCondition::new(
                check.index,
                SeccompCmpArgLen::Qword,
                check.op.clone(),
                check.value,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(SeccompRule::new)
        .map_err(|e| format!("argument comparison: {e}"))?;
    Ok(conditions.into())
}

fn ret(action: &SeccompAction) -> sock_filter {
    stmt(BPF_RET_K, u32::from(action.clone()))
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A classic BPF interpreter for the instructions seccomp filters use, to test programs
/// without installing them.
#[cfg(test)]
pub mod interpreter {
    use super::*;

    /// `BPF_ALU | BPF_AND | BPF_K`.
    const BPF_ALU_AND_K: u16 = 0x54;

    /// Runs `program` on a system call and returns the `SECCOMP_RET_*` value.
    pub fn run(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u32; 16];
        data[0] = nr;
        data[1] = arch;
        for (i, arg) in args.iter().enumerate() {
            data[4 + 2 * i] = *arg as u32;
            data[5 + 2 * i] = (*arg >> 32) as u32;
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let insn = &program[pc];
            let branch = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
            pc += 1;
            match insn.code {
                BPF_LD_W_ABS => acc = data[insn.k as usize / 4],
                BPF_ALU_AND_K => acc &= insn.k,
                BPF_JMP_JA => pc += insn.k as usize,
                BPF_JMP_JEQ_K => pc += branch(acc == insn.k),
                BPF_JMP_JGT_K => pc += branch(acc > insn.k),
                BPF_JMP_JGE_K => pc += branch(acc >= insn.k),
                BPF_JMP_JSET_K => pc += branch(acc & insn.k != 0),
                BPF_RET_K => return insn.k,
                code => panic!("unexpected BPF opcode {code:#x} at {}", pc - 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use seccompiler::SeccompCmpOp;

    use super::super::syscalls::Arch;
    use super::interpreter::run;
    use super::*;

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    fn plan(syscalls: Vec<(u32, Decision)>, enosys_above: Option<u32>) -> Plan {
        Plan {
            arch: Arch::X86_64,
            default_action: SeccompAction::Errno(libc::EPERM as u32),
            syscalls: syscalls.into_iter().collect::<BTreeMap<_, _>>(),
            enosys_above,
        }
    }

    fn checks(list: &[(u8, SeccompCmpOp, u64)]) -> Vec<ArgCheck> {
        list.iter()
            .map(|(index, op, value)| ArgCheck {
                index: *index,
                op: op.clone(),
                value: *value,
            })
            .collect()
    }

    #[test]
    fn decides_like_the_plan() {
        let socket = Decision {
            conditional: vec![
                (checks(&[(0, SeccompCmpOp::Lt, 38)]), SeccompAction::Allow),
                (checks(&[(0, SeccompCmpOp::Eq, 39)]), SeccompAction::Allow),
                (
                    checks(&[(0, SeccompCmpOp::Eq, 40), (1, SeccompCmpOp::Eq, 1)]),
                    SeccompAction::Errno(25),
                ),
            ],
            otherwise: None,
        };
        let clone = Decision {
            conditional: vec![(
                checks(&[(0, SeccompCmpOp::MaskedEq(0x7E02_0000), 0)]),
                SeccompAction::Allow,
            )],
            otherwise: None,
        };
        let read = Decision {
            conditional: vec![],
            otherwise: Some(SeccompAction::Allow),
        };
        let p = assemble(&plan(vec![(0, read), (41, socket), (56, clone)], Some(56))).unwrap();
        let x86 = Arch::X86_64.audit_arch();
        let call = |nr, a0, a1| run(&p, x86, nr, [a0, a1, 0, 0, 0, 0]);

        assert_eq!(call(0, 0, 0), ALLOW);
        assert_eq!(call(1, 0, 0), EPERM, "not in the plan");
        assert_eq!(call(41, 1, 0), ALLOW);
        assert_eq!(call(41, 37, 0), ALLOW);
        assert_eq!(call(41, 38, 0), EPERM);
        assert_eq!(call(41, 39, 0), ALLOW);
        assert_eq!(call(41, 40, 0), EPERM, "second comparison fails");
        assert_eq!(call(41, 40, 1), libc::SECCOMP_RET_ERRNO | 25);
        assert_eq!(call(41, 1 << 32 | 1, 0), EPERM, "all 64 bits are compared");
        assert_eq!(call(56, libc::SIGCHLD as u64, 0), ALLOW);
        assert_eq!(
            call(56, (libc::CLONE_NEWNS | libc::SIGCHLD) as u64, 0),
            EPERM
        );
        assert_eq!(call(57, 0, 0), ENOSYS, "above the highest number");
        assert_eq!(call(0x4000_0000, 0, 0), KILL, "x32");
        assert_eq!(
            run(&p, Arch::Aarch64.audit_arch(), 0, [0; 6]),
            KILL,
            "another ABI"
        );
    }

    #[test]
    fn long_blocks_use_long_jumps() {
        let many = Decision {
            conditional: (0..100)
                .map(|v| {
                    (
                        checks(&[(0, SeccompCmpOp::Eq, v)]),
                        SeccompAction::Errno(v as u32 + 1),
                    )
                })
                .collect(),
            otherwise: Some(SeccompAction::Allow),
        };
        let p = assemble(&plan(vec![(41, many), (60, Decision::default())], None)).unwrap();
        let x86 = Arch::X86_64.audit_arch();
        assert!(p.len() > 300);
        assert_eq!(
            run(&p, x86, 41, [99, 0, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ERRNO | 100
        );
        assert_eq!(run(&p, x86, 41, [100, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(&p, x86, 60, [0; 6]), EPERM);
        assert_eq!(run(&p, x86, 61, [0; 6]), EPERM);
    }

    /// The search finds every system call's block as a plain list of comparisons would, for
    /// every number (listed or not, around every split point) and for arguments that match a
    /// conditional rule or not; and its program is valid however far the jumps reach.
    #[test]
    fn search_decides_every_number_as_a_list_would() {
        let x86 = Arch::X86_64.audit_arch();
        let decisions: Vec<(u32, Decision)> = (0..400u32)
            .filter(|n| n % 3 != 0)
            .map(|n| {
                let decision = match n % 4 {
                    0 => Decision::default(),
                    1 => Decision {
                        conditional: vec![],
                        otherwise: Some(SeccompAction::Allow),
                    },
                    _ => Decision {
                        conditional: vec![(
                            checks(&[(0, SeccompCmpOp::Eq, u64::from(n))]),
                            SeccompAction::Errno(n),
                        )],
                        otherwise: Some(SeccompAction::Allow),
                    },
                };
                (n, decision)
            })
            .collect();
        let p = plan(decisions.clone(), None);
        let program = assemble(&p).unwrap();
        // The reference: one `jeq` per number, in order.
        let mut list = prologue(&p);
        for (number, decision) in &p.syscalls {
            let block = decision_block(decision, &p.default_action).unwrap();
            list.extend(dispatch(*number, block.len()));
            list.extend(block);
        }
        list.push(ret(&p.default_action));
        for nr in 0..420u32 {
            for arg in [u64::from(nr), 0] {
                let args = [arg, 0, 0, 0, 0, 0];
                assert_eq!(
                    run(&program, x86, nr, args),
                    run(&list, x86, nr, args),
                    "system call {nr}, first argument {arg}"
                );
            }
        }
        assert!(program.len() < list.len() + 2 * decisions.len());
    }

    #[test]
    fn refuses_oversized_programs() {
        let huge = (0..3000).map(|n| {
            (
                n,
                Decision {
                    conditional: vec![],
                    otherwise: Some(SeccompAction::Allow),
                },
            )
        });
        let err = assemble(&plan(huge.collect(), None)).unwrap_err();
        assert!(err.contains("at most 4096"), "{err}");
    }
}
