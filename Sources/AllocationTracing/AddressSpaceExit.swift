import X86
import Introspection
import Reachability

/// A tracked address space being torn down (the kernel's `exit_mmap`, on exit or exec), seen
/// from the hook while its memory is intact and no thread of it can run: the moment for its
/// final scan. Handed to the observer the tracker was given, before the ledger retires it.
public struct AddressSpaceExit: Sendable {
    /// Page-table root of the address space.
    public let root: PageTableRoot
    /// Its `struct mm_struct` address.
    public let mm: UInt64
    /// The exiting thread on exit (the last one); empty on exec (the old image has no thread).
    public let threads: [GuestTask]
    /// On exit, the group's other threads that died before it (`do_exit`), as they were then.
    public let exitedThreads: [ThreadRootState]
    /// The kernel as the hooked vCPU sees it, valid only during the call.
    public let view: KernelView
    /// The task each vCPU runs (by vCPU index).
    public let current: [Int: UInt64]
}
