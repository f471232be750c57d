import BTF
extension KernelLayout {
    /// What `loadedModules()` reads of `struct module` (Linux 6.1-6.3: `core_layout` and
    /// `init_layout`, `mod_kallsyms`, x86 `mod_arch_specific` ORC fields, `sect_attrs`), all from BTF.
    public struct Module: Sendable {
        /// `struct module_layout`: a region and the sizes that split it (text, rodata, ro_after_init, data).
        public struct Region: Sendable {
            public var base = 0, size = 0, textSize = 0, roSize = 0, roAfterInitSize = 0
        }
        public var list = 0, state = 0, name = 0, nameLength = 0
        public var core = Region(), initial = Region()
        /// `mod->kallsyms` (a pointer to `mod_kallsyms`) and the members of `mod_kallsyms`.
        public var kallsyms = 0, symtab = 0, symbolCount = 0, strtab = 0, typetab = 0
        /// `mod->arch.num_orcs`, `.orc_unwind_ip`, `.orc_unwind`; nil without CONFIG_UNWINDER_ORC.
        public var orcCount: Int?, orcIPs: Int?, orcEntries: Int?
        /// `mod->sect_attrs`; in `module_sect_attrs`: `nsections` and the array `attrs`; in one
        /// `module_sect_attr` (stride `sectionStride`): its name pointer and its address.
        public var sectionAttributes = 0, sectionCount = 0, sectionArray = 0, sectionStride = 0
        public var sectionName = 0, sectionAddress = 0

        init(btf: BTF) throws(BTFError) {
            func at(_ type: String, _ path: String) throws(BTFError) -> Int { try btf.member(type, path: path).offset }
            list = try at("module", "list")
            state = try at("module", "state")
            let name = try btf.member("module", path: "name")
            self.name = name.offset
            nameLength = name.size
            func region(_ member: String) throws(BTFError) -> Region {
                let base = try at("module", member)
                return Region(base: base + (try at("module_layout", "base")), size: base + (try at("module_layout", "size")),
                              textSize: base + (try at("module_layout", "text_size")),
                              roSize: base + (try at("module_layout", "ro_size")),
                              roAfterInitSize: base + (try at("module_layout", "ro_after_init_size")))
            }
            core = try region("core_layout")
            initial = try region("init_layout")
            kallsyms = try at("module", "kallsyms")
            symtab = try at("mod_kallsyms", "symtab")
            symbolCount = try at("mod_kallsyms", "num_symtab")
            strtab = try at("mod_kallsyms", "strtab")
            typetab = try at("mod_kallsyms", "typetab")
            if let arch = try? at("module", "arch") {
                orcCount = (try? at("mod_arch_specific", "num_orcs")).map { arch + $0 }
                orcIPs = (try? at("mod_arch_specific", "orc_unwind_ip")).map { arch + $0 }
                orcEntries = (try? at("mod_arch_specific", "orc_unwind")).map { arch + $0 }
            }
            sectionAttributes = try at("module", "sect_attrs")
            sectionCount = try at("module_sect_attrs", "nsections")
            sectionArray = try at("module_sect_attrs", "attrs")
            // `module_sect_attr` is { struct bin_attribute battr; unsigned long address; }.
            if let size = try? btf.size(ofStructure: "module_sect_attr") {
                sectionStride = size
                sectionName = try at("module_sect_attr", "battr.attr.name")
                sectionAddress = try at("module_sect_attr", "address")
            } else {
                let attribute = try btf.size(ofStructure: "bin_attribute")
                sectionStride = attribute + 8
                sectionName = try at("bin_attribute", "attr.name")
                sectionAddress = attribute
            }
        }
        init() {}
    }
}
