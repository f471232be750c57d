import AllocationTracing
import ArgumentParser

/// `--stack-depth N` of `run` and `attach`: frames kept per allocation stack.
enum StackDepthArgument {
    /// Refuses a depth outside `UserAllocationTracker.stackDepths`.
    static func validate(_ frames: Int) throws {
        let range = UserAllocationTracker.stackDepths
        guard range.contains(frames) else {
            throw ValidationError("--stack-depth must be between \(range.lowerBound) and \(range.upperBound)")
        }
    }
}
