/// What `leakvisor attach` can start tracking in a running guest (the kernel is tracked only
/// from a run's start).
public enum AttachTrack: String, CaseIterable, Sendable {
    /// The malloc family and C++ new/delete.
    case user
    /// The malloc family only.
    case userMalloc = "user-malloc"

    /// Whether C++ `new`/`delete` are armed too.
    public var includesOperators: Bool { self == .user }

    /// "user or user-malloc", for messages.
    public static var choices: String { allCases.map(\.rawValue).joined(separator: " or ") }
}
