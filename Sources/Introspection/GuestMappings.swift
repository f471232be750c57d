import X86
extension KernelView {
    /// The memory mappings of process `pid`, like `/proc/PID/maps`.
    public func mappings(of pid: Int32) throws(IntrospectionError) -> [GuestMapping] {
        try mappings(of: try process(pid))
    }

    /// The memory mappings of a task: none for a kernel thread (no `mm`).
    public func mappings(of task: GuestTask) throws(IntrospectionError) -> [GuestMapping] {
        try mappings(ofMM: task.mm)
    }

    /// The memory mappings (VMAs) of the address space `mm` (a `struct mm_struct *`); none when it is 0.
    public func mappings(ofMM mm: UInt64) throws(IntrospectionError) -> [GuestMapping] {
        guard mm != 0 else { return [] }
        guard mm >= 0xFFFF_8000_0000_0000 else {
            throw .inconsistent("mm_struct pointer 0x\(String(mm, radix: 16)) is not a kernel address")
        }
        let layout = kernel.layout
        let root = try u64(mm &+ UInt64(layout.mm.mapleRoot), "mm_struct.mm_mt.ma_root")
        let areas = try MapleTreeWalker(view: self).entries(root: root)
        let brk = try u64(mm &+ UInt64(layout.mm.brk), "mm_struct.brk")
        let startBrk = try u64(mm &+ UInt64(layout.mm.startBrk), "mm_struct.start_brk")
        let startStack = try u64(mm &+ UInt64(layout.mm.startStack), "mm_struct.start_stack")
        let specialOps = Set(["special_mapping_vmops", "legacy_special_mapping_vmops"].compactMap { try? symbol($0).rawValue })
        var result: [GuestMapping] = []
        var previousEnd: UInt64 = 0
        for area in areas {
            guard area >= 0xFFFF_8000_0000_0000 else { throw .inconsistent("VMA pointer 0x\(String(area, radix: 16))") }
            let v = layout.vma
            let start = try u64(area &+ UInt64(v.start), "vm_area_struct.vm_start")
            let end = try u64(area &+ UInt64(v.end), "vm_area_struct.vm_end")
            guard start < end, end <= 0x0100_0000_0000_0000, start >= previousEnd, start & 0xFFF == 0 else {
                throw .inconsistent("VMA [0x\(String(start, radix: 16)), 0x\(String(end, radix: 16))) is out of order or malformed")
            }
            previousEnd = end
            let flags = try u64(area &+ UInt64(v.flags), "vm_area_struct.vm_flags")
            let permissions = (flags & 1 != 0 ? "r" : "-") + (flags & 2 != 0 ? "w" : "-")
                + (flags & 4 != 0 ? "x" : "-") + (flags & 8 != 0 ? "s" : "p")
            let file = try u64(area &+ UInt64(v.file), "vm_area_struct.vm_file")
            var mapping = GuestMapping(start: start, end: end, permissions: permissions, fileOffset: 0,
                                       deviceMajor: 0, deviceMinor: 0, inode: 0, path: "", fileObject: file)
            if file != 0 {
                guard file >= 0xFFFF_8000_0000_0000 else {
                    throw .inconsistent("vm_area_struct.vm_file is 0x\(String(file, radix: 16)), not a kernel address")
                }
                let f = layout.files
                mapping.fileOffset = (try u64(area &+ UInt64(v.pageOffset), "vm_area_struct.vm_pgoff")) &<< 12
                let inode = try kernelPointer(file &+ UInt64(f.fileInode), "file.f_inode")
                mapping.inode = try u64(inode &+ UInt64(f.inodeNumber), "inode.i_ino")
                let superBlock = try kernelPointer(inode &+ UInt64(f.inodeSuperBlock), "inode.i_sb")
                let device = try u32(superBlock &+ UInt64(f.superBlockDevice), "super_block.s_dev")
                mapping.deviceMajor = device >> 20
                mapping.deviceMinor = device & 0xF_FFFF
                mapping.path = try path(ofFile: file)
            } else {
                let ops = try u64(area &+ UInt64(v.operations), "vm_area_struct.vm_ops")
                if specialOps.contains(ops) {
                    let special = try kernelPointer(area &+ UInt64(v.privateData), "vm_area_struct.vm_private_data")
                    let name = try kernelPointer(special &+ UInt64(layout.files.specialMappingName), "vm_special_mapping.name")
                    do { mapping.path = try space.readCString(at: GuestVirtualAddress(name), maxLength: 64) } catch {
                        throw .read("special mapping name", error)
                    }
                } else if start <= brk && end >= startBrk {
                    mapping.path = "[heap]"
                } else if start <= startStack && end >= startStack {
                    mapping.path = "[stack]"
                }
            }
            result.append(mapping)
        }
        return result
    }

    /// The absolute path of an open file (`struct file *`), following dentries and mounts up to
    /// the root, as d_path() would for a process whose root is the global root.
    public func path(ofFile file: UInt64) throws(IntrospectionError) -> String {
        let f = kernel.layout.files
        var dentry = try kernelPointer(file &+ UInt64(f.filePath + f.pathDentry), "file.f_path.dentry")
        let vfsmount = try kernelPointer(file &+ UInt64(f.filePath + f.pathMount), "file.f_path.mnt")
        var mount = vfsmount &- UInt64(f.mountVFSMount)
        var components: [String] = []
        for _ in 0..<512 {
            let mountRoot = try kernelPointer(mount &+ UInt64(f.mountVFSMount + f.vfsmountRoot), "vfsmount.mnt_root")
            if dentry == mountRoot {
                let parent = try kernelPointer(mount &+ UInt64(f.mountParent), "mount.mnt_parent")
                if parent == mount { return "/" + components.reversed().joined(separator: "/") }
                dentry = try kernelPointer(mount &+ UInt64(f.mountMountpoint), "mount.mnt_mountpoint")
                mount = parent
                continue
            }
            let parent = try kernelPointer(dentry &+ UInt64(f.dentryParent), "dentry.d_parent")
            if parent == dentry { return "/" + components.reversed().joined(separator: "/") }
            let length = try u32(dentry &+ UInt64(f.dentryName + f.qstrLength), "dentry.d_name.len")
            guard length > 0, length <= 255 else { throw .inconsistent("a file name of \(length) bytes") }
            let namePointer = try kernelPointer(dentry &+ UInt64(f.dentryName + f.qstrName), "dentry.d_name.name")
            components.append(String(decoding: try bytes(namePointer, Int(length), "dentry name"), as: UTF8.self))
            dentry = parent
        }
        throw .inconsistent("a file path deeper than 512 components")
    }
}
