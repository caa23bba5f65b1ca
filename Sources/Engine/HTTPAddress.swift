// An http:// URL for a host and port, an IPv6 literal in brackets (RFC 3986 §3.2.2): the
// server's banner and directory entry and the dashboard's address are read back as URLs, and
// `http://::1:8080` is not one.
public enum HTTPAddress {
    public static func url(host: String, port: Int) -> String {
        "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }
}
