import AllocationLedger
import AllocationTracing
import BTF
import Introspection
import LeakAnalysis

/// BTF parsing, then every lookup the kernel layout does over what parsed.
enum BTFTarget {
    static let target = FuzzTarget(name: "btf") { input in
        guard let btf = try? BTF(data: input.bytes) else { return }
        _ = try? KernelLayout(btf: btf)
        for id in 1...max(1, min(btf.typeCount, 64)) {
            let typeID = BTFTypeID(UInt32(id))
            _ = try? btf.type(typeID)
            _ = try? btf.resolve(typeID)
            _ = try? btf.size(of: typeID)
            _ = try? btf.members(of: typeID)
            _ = try? btf.enumerators(of: typeID)
        }
        for name in ["task_struct", "mm_struct", "orc_entry", "xa_node", "page", "folio"] {
            _ = try? btf.structures(named: name)
            _ = try? btf.size(ofStructure: name)
        }
        _ = try? btf.member("task_struct", path: "thread.sp")
        _ = try? btf.enumValue("pageflags", "PG_head")
        _ = try? btf.enumerator(named: "PG_head")
    }
}
