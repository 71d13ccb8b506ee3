//! Tests of `parse.rs`.

use redis::{PushKind, ServerErrorKind, Value, VerbatimFormat};

use super::super::tests::decode_one;
use super::super::Frame;
use super::{parse_frame, ParseStack};

fn reply(bytes: &[u8]) -> Value {
    match decode_one(bytes) {
        Ok(Frame::Reply(value)) => value,
        other => panic!("{bytes:?} gave {other:?}"),
    }
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn resp2_types() {
    let table: &[(&[u8], Value)] = &[
        (b"+OK\r\n", Value::Okay),
        (b"+PONG\r\n", Value::SimpleString("PONG".into())),
        (b"+\r\n", Value::SimpleString(String::new())),
        (b":0\r\n", Value::Int(0)),
        (b":-42\r\n", Value::Int(-42)),
        (b":+7\r\n", Value::Int(7)),
        (b":9223372036854775807\r\n", Value::Int(i64::MAX)),
        (b":-9223372036854775808\r\n", Value::Int(i64::MIN)),
        (b"$3\r\nfoo\r\n", bulk("foo")),
        (b"$0\r\n\r\n", bulk("")),
        (b"$4\r\n\r\n\r\n\r\n", bulk("\r\n\r\n")),
        (b"$-1\r\n", Value::Nil),
        (b"*-1\r\n", Value::Nil),
        (b"*0\r\n", Value::Array(vec![])),
        (
            b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n*0\r\n$-1\r\n",
            Value::Array(vec![
                Value::Int(1),
                Value::Array(vec![bulk("a"), Value::Array(vec![])]),
                Value::Nil,
            ]),
        ),
    ];
    for (bytes, expected) in table {
        assert_eq!(&reply(bytes), expected, "{bytes:?}");
    }
}

#[test]
fn resp3_types() {
    let table: &[(&[u8], Value)] = &[
        (b"_\r\n", Value::Nil),
        (b"#t\r\n", Value::Boolean(true)),
        (b"#f\r\n", Value::Boolean(false)),
        (b",1.5\r\n", Value::Double(1.5)),
        (b",-2\r\n", Value::Double(-2.0)),
        (b",1e300\r\n", Value::Double(1e300)),
        (b",inf\r\n", Value::Double(f64::INFINITY)),
        (b",-inf\r\n", Value::Double(f64::NEG_INFINITY)),
        (b"~0\r\n", Value::Set(vec![])),
        (b"~-1\r\n", Value::Nil),
        (
            b"~2\r\n:1\r\n#t\r\n",
            Value::Set(vec![Value::Int(1), Value::Boolean(true)]),
        ),
        (b"%0\r\n", Value::Map(vec![])),
        (
            b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n%1\r\n_\r\n~0\r\n",
            Value::Map(vec![
                (Value::SimpleString("a".into()), Value::Int(1)),
                (
                    bulk("b"),
                    Value::Map(vec![(Value::Nil, Value::Set(vec![]))]),
                ),
            ]),
        ),
        (
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n:9\r\n",
            Value::Attribute {
                data: Box::new(Value::Array(vec![Value::Int(2), Value::Int(9)])),
                attributes: vec![(
                    Value::SimpleString("key-popularity".into()),
                    Value::Map(vec![(bulk("a"), Value::Double(0.19))]),
                )],
            },
        ),
        (
            // An attribute and its value form one element of the enclosing array.
            b"*2\r\n|0\r\n:1\r\n:2\r\n",
            Value::Array(vec![
                Value::Attribute {
                    data: Box::new(Value::Int(1)),
                    attributes: vec![],
                },
                Value::Int(2),
            ]),
        ),
        (
            b"=15\r\ntxt:Some string\r\n",
            Value::VerbatimString {
                format: VerbatimFormat::Text,
                text: "Some string".into(),
            },
        ),
        (
            b"=6\r\nxyz:\r\n\r\n",
            Value::VerbatimString {
                format: VerbatimFormat::Unknown("xyz".into()),
                text: "\r\n".into(),
            },
        ),
    ];
    for (bytes, expected) in table {
        assert_eq!(&reply(bytes), expected, "{bytes:?}");
    }
    assert!(matches!(reply(b",nan\r\n"), Value::Double(d) if d.is_nan()));
}

#[test]
fn big_numbers() {
    for digits in ["3492890328409238509324850943850943825024385", "-12", "0"] {
        let value = reply(format!("({digits}\r\n").as_bytes());
        assert!(
            matches!(&value, Value::BigNumber(n) if n.to_string() == digits),
            "{value:?}"
        );
    }
}

#[test]
fn errors_are_values_with_redis_kinds() {
    // (wire bytes, kind, code, details)
    type Case<'a> = (&'a [u8], Option<ServerErrorKind>, &'a str, Option<&'a str>);
    let cases: &[Case] = &[
        (
            b"-ERR unknown command\r\n",
            Some(ServerErrorKind::ResponseError),
            "ERR",
            Some("unknown command"),
        ),
        (
            b"-NOSCRIPT No matching script\r\n",
            Some(ServerErrorKind::NoScript),
            "NOSCRIPT",
            Some("No matching script"),
        ),
        (
            b"-MOVED 3999 127.0.0.1:6381\r\n",
            Some(ServerErrorKind::Moved),
            "MOVED",
            Some("3999 127.0.0.1:6381"),
        ),
        (
            b"-WRONGTYPE Operation against a key\r\n",
            None,
            "WRONGTYPE",
            Some("Operation against a key"),
        ),
        (
            b"-ERR\r\n",
            Some(ServerErrorKind::ResponseError),
            "ERR",
            None,
        ),
        (
            b"!21\r\nSYNTAX invalid syntax\r\n",
            None,
            "SYNTAX",
            Some("invalid syntax"),
        ),
        (
            b"!18\r\nNOSCRIPT two\r\nline\r\n",
            Some(ServerErrorKind::NoScript),
            "NOSCRIPT",
            Some("two\r\nline"),
        ),
    ];
    for (bytes, kind, code, details) in cases {
        let Value::ServerError(err) = reply(bytes) else {
            panic!("{bytes:?}")
        };
        assert_eq!(
            (err.kind(), err.code(), err.details()),
            (*kind, *code, *details),
            "{bytes:?}"
        );
    }
    // Inside an aggregate (e.g. EXEC results) errors are elements like any other.
    let Value::Array(items) = reply(b"*2\r\n+OK\r\n-ERR bad\r\n") else {
        panic!()
    };
    assert!(
        matches!(&items[1], Value::ServerError(e) if e.kind() == Some(ServerErrorKind::ResponseError))
    );
}

#[test]
fn pushes() {
    let frame = decode_one(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n").unwrap();
    let expected = Value::Push {
        kind: PushKind::Message,
        data: vec![bulk("ch"), bulk("hi")],
    };
    assert_eq!(frame, Frame::Push(expected));
    let frame = decode_one(b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n").unwrap();
    let expected = Value::Push {
        kind: PushKind::Invalidate,
        data: vec![Value::Array(vec![bulk("k")])],
    };
    assert_eq!(frame, Frame::Push(expected));
    let frame = decode_one(b">2\r\n$4\r\nfoo!\r\n_\r\n").unwrap();
    let expected = Value::Push {
        kind: PushKind::Other("foo!".into()),
        data: vec![Value::Nil],
    };
    assert_eq!(frame, Frame::Push(expected));
}

#[test]
fn malformed_elements_are_errors() {
    let cases: &[&[u8]] = &[
        b"#x\r\n",
        b"#\r\n",
        b"_x\r\n",
        b",\r\n",
        b",1.5x\r\n",
        b":\r\n",
        b":-\r\n",
        b":12a\r\n",
        b":9223372036854775808\r\n",
        b":-9223372036854775809\r\n",
        b"+\xff\xfe\r\n",
        b"%-1\r\n",
        b"|-1\r\n",
        b">-1\r\n",
        b"=-1\r\n",
        b"!-1\r\n",
        b"$-2\r\n",
        b"*-2\r\n",
        b"=3\r\nabc\r\n", // verbatim without the `fmt:` prefix: rejected by the redis crate
        b">1\r\n:1\r\n",  // push whose kind is not a string: rejected by the redis crate
        b"(12x\r\n",
    ];
    for bytes in cases {
        let err = decode_one(bytes).expect_err(&format!("{bytes:?} should fail"));
        assert!(err.to_string().contains("at byte"), "{err}");
    }
}

#[test]
fn parse_alone_rejects_truncated_or_trailing_input() {
    // The scanner never hands these over, but `parse_frame` must not trust it.
    for bytes in [
        &b"*2\r\n:1\r\n"[..],
        b"$5\r\nab\r\n",
        b"+OK\r\n+OK\r\n",
        b"*1\r\n",
        b"",
        b">2\r\n+message\r\n",
    ] {
        assert!(
            parse_frame(bytes, 8, &mut ParseStack::default()).is_err(),
            "{bytes:?}"
        );
    }
    assert!(parse_frame(b"*1\r\n*1\r\n:1\r\n", 1, &mut ParseStack::default()).is_err());
    assert_eq!(
        parse_frame(b"*1\r\n*1\r\n:1\r\n", 2, &mut ParseStack::default()),
        Ok(Value::Array(vec![Value::Array(vec![Value::Int(1)])]))
    );
}
