/// Whether a `Result` holds a value: for expectations on lazily built layouts.
extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}
