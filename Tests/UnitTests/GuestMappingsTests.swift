import AllocationTracing
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Testing

/// `mappings(ofMM:)` over a crafted mm_struct whose maple tree leaf holds an anonymous and a
/// file-backed VMA: the file's `struct file *` is reported, and /proc/PID/maps lines are unchanged.
@Suite struct GuestMappingsTests {
    static let heap: UInt64 = 0xFFFF_8880_0100_0000

    @Test func mappingsOfAnMMNameTheirOpenFiles() throws {
        var guest = try CraftedKernelMemory()
        try guest.map(Self.heap, to: 0x40_0000)
        let layout = guest.kernel.layout
        let (mm, leaf, anonymous, mapped) = (Self.heap, Self.heap + 0x1000, Self.heap + 0x2000, Self.heap + 0x3000)
        let (file, inode, superBlock, mount) = (Self.heap + 0x4000, Self.heap + 0x5000, Self.heap + 0x6000, Self.heap + 0x7000)
        let (root, dentry, name) = (Self.heap + 0x8000, Self.heap + 0x9000, Self.heap + 0xA000)

        // A leaf maple node as the root, holding the two VMAs in slots 0 and 1.
        try guest.put64(leaf | layout.maple.typeLeaf64 << 3 | 4 | 2, at: mm + UInt64(layout.mm.mapleRoot))
        try guest.put8(1, at: leaf + UInt64(layout.maple.range.metaEnd))
        try guest.put64(anonymous, at: leaf + UInt64(layout.maple.range.slots))
        try guest.put64(mapped, at: leaf + UInt64(layout.maple.range.slots + 8))
        let v = layout.vma
        let areas: [(UInt64, UInt64, UInt64, UInt64)] = [(anonymous, 0x40_0000, 0x40_1000, 0x1), (mapped, 0x50_0000, 0x50_2000, 0x5)]
        for (area, start, end, flags) in areas {
            try guest.put64(start, at: area + UInt64(v.start))
            try guest.put64(end, at: area + UInt64(v.end))
            try guest.put64(flags, at: area + UInt64(v.flags))
        }
        try guest.put64(2, at: mapped + UInt64(v.pageOffset))
        try guest.put64(file, at: mapped + UInt64(v.file))

        // /libc on device 8:1: a dentry under the root of a mount that is its own parent.
        let f = layout.files
        try guest.put64(inode, at: file + UInt64(f.fileInode))
        try guest.put64(1234, at: inode + UInt64(f.inodeNumber))
        try guest.put64(superBlock, at: inode + UInt64(f.inodeSuperBlock))
        try guest.put32(8 << 20 | 1, at: superBlock + UInt64(f.superBlockDevice))
        try guest.put64(dentry, at: file + UInt64(f.filePath + f.pathDentry))
        try guest.put64(mount + UInt64(f.mountVFSMount), at: file + UInt64(f.filePath + f.pathMount))
        try guest.put64(root, at: mount + UInt64(f.mountVFSMount + f.vfsmountRoot))
        try guest.put64(mount, at: mount + UInt64(f.mountParent))
        try guest.put64(root, at: dentry + UInt64(f.dentryParent))
        try guest.put32(4, at: dentry + UInt64(f.dentryName + f.qstrLength))
        try guest.put64(name, at: dentry + UInt64(f.dentryName + f.qstrName))
        try guest.memory.write(Array("libc".utf8), at: try guest.physical(name))

        let maps = try guest.view().mappings(ofMM: mm)
        #expect(maps.count == 2)
        #expect(maps.first?.fileObject == 0)
        #expect(maps.first?.procMapsLine == "00400000-00401000 r--p 00000000 00:00 0 ")
        let last = try #require(maps.last)
        #expect(last.fileObject == file && last.path == "/libc" && last.inode == 1234 && last.fileOffset == 0x2000)
        #expect(last.procMapsLine.hasPrefix("00500000-00502000 r-xp 00002000 08:01 1234 "))
        #expect(last.procMapsLine.hasSuffix(" /libc") && last.procMapsLine.count == 73 + 5)
        #expect(try guest.view().mappings(ofMM: 0).isEmpty)
        #expect(throws: IntrospectionError.self) { try guest.view().mappings(ofMM: 0x7FFF_0000_0000) }
    }
}
