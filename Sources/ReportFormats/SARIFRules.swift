import AllocationLedger
import Reachability

/// The SARIF form's rules: one per leak class and per finding kind, with ids that never change
/// (code scanning keys alerts by rule id and fingerprint).
enum SARIFRules {
    struct Rule {
        var id: String
        var name: String
        var level: String
        var summary: String
        var help: String
    }

    static let all: [Rule] = [
        Rule(id: "LV1001", name: "DefinitelyLost", level: "error",
             summary: "Heap memory no longer referenced from anywhere",
             help: "No pointer to these blocks was found in the process's registers, stacks, globals or other reachable blocks: they can never be freed. Free them on the path that drops the last pointer."),
        Rule(id: "LV1002", name: "IndirectlyLost", level: "warning",
             summary: "Heap memory referenced only from leaked memory",
             help: "These blocks are referenced only from definitely lost blocks; freeing the owner (and what it points to) fixes both."),
        Rule(id: "LV1003", name: "PossiblyLost", level: "warning",
             summary: "Heap memory referenced only through interior pointers",
             help: "Only pointers into the middle of these blocks were found: a leak unless the program keeps such pointers deliberately."),
        Rule(id: "LV1004", name: "GrowingWhileReferenced", level: "note",
             summary: "An allocation site whose referenced blocks keep accumulating unwritten",
             help: "The blocks stay referenced, so no scan calls them leaks, but the site keeps adding blocks that are no longer written: a cache or list that is never pruned."),
        Rule(id: "LV2001", name: "DoubleFree", level: "error",
             summary: "A block released twice",
             help: "The address was released again after it had been released and not allocated since."),
        Rule(id: "LV2002", name: "InvalidFree", level: "warning",
             summary: "A release of an address no allocator returned",
             help: "The address was never returned by a tracked allocator (or was released before tracking started)."),
        Rule(id: "LV2003", name: "MismatchedRelease", level: "error",
             summary: "A block released by a function of another allocator family",
             help: "malloc must be paired with free, new with delete and new[] with delete[]."),
        Rule(id: "LV2004", name: "ImplausibleAllocation", level: "warning",
             summary: "An allocator returned an address outside user space or wrapping",
             help: "The allocator's result was refused by the ledger: a corrupted heap or an allocator the tracker misunderstands."),
    ]

    static func index(of reachability: ReachabilityClass) -> Int? {
        switch reachability {
        case .directLeak: 0
        case .indirectLeak: 1
        case .possiblyLost: 2
        case .reachable: nil
        }
    }

    static let growthIndex = 3

    static func index(of finding: LedgerFinding.Kind) -> Int {
        switch finding {
        case .doubleFree: 4
        case .unknownFree: 5
        case .mismatchedRelease: 6
        case .implausibleBlock: 7
        }
    }

    static func sarifRules() -> [SARIF.Rule] {
        all.map { rule in
            SARIF.Rule(id: rule.id, name: rule.name, shortDescription: SARIF.Message(text: rule.summary),
                       fullDescription: SARIF.Message(text: rule.help), help: SARIF.Message(text: rule.help),
                       defaultConfiguration: SARIF.Configuration(level: rule.level),
                       properties: SARIF.RuleProperties(tags: ["memory", "leak", "reliability"], precision: "high",
                                                        problemSeverity: rule.level == "note" ? "recommendation" : rule.level))
        }
    }
}
