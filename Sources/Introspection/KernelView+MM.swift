import GuestMemory
import X86

extension KernelView {
    /// `mm->pgd`: the kernel virtual address of an address space's top-level page table.
    public func pageTableDirectory(ofMM mm: UInt64) throws(IntrospectionError) -> UInt64 {
        try kernelPointer(try member(mm, kernel.layout.mm.pgd, "mm_struct.pgd"), "mm_struct.pgd")
    }

    /// The guest-physical address of an address space's top-level page table: what CR3 holds
    /// (without flag bits) while that address space runs.
    public func pageTableRoot(ofMM mm: UInt64) throws(IntrospectionError) -> PageTableRoot {
        PageTableRoot(tableAddress: GuestPhysicalAddress(try physicalAddress(ofPageTable: try pageTableDirectory(ofMM: mm))))
    }

    /// `task->pid` (the thread id) of a task, one read.
    public func threadID(ofTask task: UInt64) throws(IntrospectionError) -> Int32 {
        Int32(bitPattern: try u32(try member(task, kernel.layout.task.pid, "task_struct.pid"), "task_struct.pid"))
    }
}
