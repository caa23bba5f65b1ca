// A connection URL as it may be printed: its password (in the user info, or libpq's
// `password=` parameter) masked, so no log line, error or report carries a credential. One rule
// for every URL the product prints: PostgreSQL's, Redis's, a remote-write endpoint's.
import Foundation

public enum RedactedURL {
    public static let mask = "***"

    /// `url` with any password masked; unchanged when it carries none.
    public static func of(_ url: String) -> String {
        guard var parts = URLComponents(string: url), parts.scheme != nil else {
            // Not a URL that parses (a libpq `key=value` string, a password with a raw space):
            // nothing of it is printed that could hold a secret.
            return url.lowercased().contains("password") || url.contains("@")
                ? "(a connection string that may hold a password)" : url
        }
        var masked = false
        if parts.password != nil {
            parts.password = mask
            masked = true
        }
        if let items = parts.queryItems, items.contains(where: { $0.name.lowercased() == "password" }) {
            parts.queryItems = items.map {
                $0.name.lowercased() == "password" ? URLQueryItem(name: $0.name, value: mask) : $0
            }
            masked = true
        }
        return masked ? parts.string ?? "(a URL with a password)" : url
    }

    /// A database URL as the harness names it: unset or empty means the embedded cluster.
    public static func database(_ url: String?) -> String {
        guard let url, !url.isEmpty else { return "the embedded PostgreSQL" }
        return of(url)
    }
}
