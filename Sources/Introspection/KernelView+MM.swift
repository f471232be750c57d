extension KernelView {
    /// `mm->pgd`: the kernel virtual address of an address space's top-level page table.
    public func pageTableDirectory(ofMM mm: UInt64) throws(IntrospectionError) -> UInt64 {
        try kernelPointer(mm + UInt64(kernel.layout.mm.pgd), "mm_struct.pgd")
    }
}
