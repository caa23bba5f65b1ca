// The headers the API reads and writes beyond those HTTPTypes names.
import HTTPTypes

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let xRequestID = HTTPField.Name("X-Request-Id")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
    /// Set on a claim one instance forwards to the drop's owner (the sender's id): a
    /// forwarded claim is never forwarded again.
    static let stockdropForwardedBy = HTTPField.Name("X-Stockdrop-Forwarded-By")!
    /// The milliseconds the original caller still waits for a forwarded claim's answer.
    static let stockdropDeadline = HTTPField.Name("X-Stockdrop-Deadline-Ms")!
    /// When the server received the request (`ShedHandler` with `KernelReceipt`, monotonic
    /// nanoseconds): its time in the server counts from there, not from when a task got to it.
    /// Internal: whatever a client sends under this name is replaced, never read.
    static let stockdropReadAt = HTTPField.Name("X-Stockdrop-Read-At")!
    /// The instance that answered (on every claim's answer), so operators see where it ran.
    static let stockdropInstance = HTTPField.Name("X-Stockdrop-Instance")!
}
