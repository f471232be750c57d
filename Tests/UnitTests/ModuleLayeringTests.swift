import Foundation
import Testing

/// The house's layering, read from the sources themselves: each module imports only modules of a
/// lower layer (never one above it, never a sibling of its own layer), and the monitor's own
/// modules reach the machine only where the picture in docs/architecture.md says they do.
@Suite struct ModuleLayeringTests {
    /// Layers, bottom first. A module may import modules of lower layers only.
    static let layers: [[String]] = [
        ["CKVM", "CElfDW", "CZlib", "CLibcrypto", "CLibvirt", "CUserfaultfd", "GuestMemory", "BTF", "Devices", "GuestImage", "BinaryCoding"],
        ["KVM", "X86", "Boot", "DebugInfo", "SnapshotFile", "Libvirt"],
        ["GuestInterface", "KVMState", "GDBRemote"],
        ["VMM", "Introspection", "QEMUBackend"],
        ["Reachability"],
        ["AllocationLedger"],
        ["AllocationTracing", "LeakAnalysis"],
        ["Control", "ReportFormats", "LeakSuppressions", "LeakJournal", "MetricsExport"],
        ["Monitor"],
        ["Benchmarks"],
        ["leakvisor"],
    ]

    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources")

    /// Our modules each Swift file of `module` imports.
    static func imports(of module: String) throws -> [String: Set<String>] {
        let known = Set(layers.joined())
        let directory = sources.appendingPathComponent(module)
        var result: [String: Set<String>] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".swift") {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ")
                guard let index = words.firstIndex(of: "import"), index + 1 < words.count,
                      words[..<index].allSatisfy({ $0.hasPrefix("@") || $0 == "public" || $0 == "internal" }) else { continue }
                let imported = String(words[index + 1])
                if known.contains(imported) { result[name, default: []].insert(imported) }
            }
        }
        return result
    }

    @Test func everySourceModuleHasALayer() throws {
        let modules = try FileManager.default.contentsOfDirectory(atPath: Self.sources.path).filter { !$0.hasPrefix(".") }
        let placed = Set(Self.layers.joined())
        #expect(Set(modules).subtracting(placed).isEmpty, "modules with no layer: \(Set(modules).subtracting(placed))")
    }

    @Test func noModuleImportsOneAboveItOrBesideIt() throws {
        let modules = try Set(FileManager.default.contentsOfDirectory(atPath: Self.sources.path))
        for (rank, layer) in Self.layers.enumerated() {
            let allowed = Set(Self.layers[..<rank].joined())
            for module in layer where modules.contains(module) {
                for (file, imported) in try Self.imports(of: module) {
                    let wrong = imported.subtracting(allowed)
                    #expect(wrong.isEmpty, "\(module)/\(file) imports \(wrong.sorted()) from its own layer or above")
                }
            }
        }
    }

    @Test func theMachineLayersKnowNothingOfLinuxOrDebugInfo() throws {
        for module in ["KVM", "VMM", "X86", "GuestInterface", "GDBRemote", "QEMUBackend", "Libvirt"] {
            for (file, imported) in try Self.imports(of: module) {
                #expect(imported.isDisjoint(with: ["Introspection", "DebugInfo", "BTF"]), "\(module)/\(file) imports \(imported.sorted())")
            }
        }
    }

    @Test func tracingAndAnalysisWorkOverTheGuestInterfaceNotTheMachine() throws {
        for module in ["AllocationTracing", "LeakAnalysis", "AllocationLedger", "Reachability", "ReportFormats", "LeakSuppressions", "LeakJournal",
                       "MetricsExport"] {
            let directory = Self.sources.appendingPathComponent(module)
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".swift") {
                let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
                let namesMachine = text.range(of: #"(?<![A-Za-z0-9_])Machine(?![A-Za-z0-9_])"#, options: .regularExpression) != nil
                #expect(!text.contains("import VMM") && !namesMachine, "\(module)/\(name) names the VMM or Machine")
            }
        }
    }
}
