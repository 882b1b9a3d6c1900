import Testing

/// End-to-end tests with real `spoold` and `spool` processes. They run one at a time: each
/// starts daemons and fsyncs a lot, and the machines that run them are small.
@Suite(.serialized) struct EndToEndTests {}
