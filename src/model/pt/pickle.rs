//! A reader of the pickles `torch.save` writes (protocol 2, and the protocol 3–5 opcodes for completeness),
//! without Python: classes are never imported or run. A class instance is kept as an opaque
//! [`Value::Object`] (its class name, constructor arguments and state), a persistent id (how PyTorch refers
//! to a tensor storage stored beside the pickle) as [`Value::PersId`]. Only three constructors are
//! understood: `collections.OrderedDict` and `set`/`frozenset` become a [`Value::Dict`] and a
//! [`Value::List`], so the items the pickle adds to them later land where they belong.
//!
//! Objects live in an arena while the machine runs, because the pickle's memo hands out references: a dict
//! memoised empty and filled afterwards must be seen filled wherever it is fetched again. [`load`] turns the
//! arena into a tree once the pickle stops.

use std::collections::HashMap;

/// A value rebuilt from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list, set or frozenset.
    List(Vec<Value>),
    /// A dict or `collections.OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A reference to a module-level name (`GLOBAL`): a class or a function.
    Global {
        /// Its module (`torch._utils`).
        module: String,
        /// Its name (`_rebuild_tensor_v2`).
        name: String,
    },
    /// A class instance or the result of a call: what was called, with which arguments, and the state
    /// `BUILD` gave it (an object's `__dict__`).
    Object {
        /// The class or function (a [`Value::Global`]).
        class: Box<Value>,
        /// Its arguments (a tuple).
        args: Box<Value>,
        /// Its state, if any.
        state: Option<Box<Value>>,
    },
    /// A persistent id: PyTorch's reference to a storage record of the archive.
    PersId(Box<Value>),
}

impl Value {
    /// The value under `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one (booleans are integers in Python).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The number, if this is an integer or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => self.as_i64().map(|i| i as f64),
        }
    }

    /// The items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// `module.name` of a global, or of an object's class.
    pub fn class_name(&self) -> Option<String> {
        match self {
            Value::Global { module, name } => Some(format!("{module}.{name}")),
            Value::Object { class, .. } => class.class_name(),
            _ => None,
        }
    }

    /// An object's state (its `__dict__`).
    pub fn state(&self) -> Option<&Value> {
        match self {
            Value::Object { state, .. } => state.as_deref(),
            _ => None,
        }
    }

    /// An object's constructor arguments.
    pub fn args(&self) -> &[Value] {
        match self {
            Value::Object { args, .. } => args.as_seq().unwrap_or_default(),
            _ => &[],
        }
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(i) => format!("the integer {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Tuple(v) => format!("a tuple of {}", v.len()),
            Value::List(v) => format!("a list of {}", v.len()),
            Value::Dict(v) => format!("a dict of {} keys", v.len()),
            Value::Global { .. } | Value::Object { .. } => {
                format!("an object of class {}", self.class_name().unwrap_or_default())
            }
            Value::PersId(_) => "a persistent id".into(),
        }
    }
}

/// One node of the arena: like [`Value`], children by index.
#[derive(Debug, Clone)]
enum Node {
    Leaf(Value),
    Tuple(Vec<usize>),
    List(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Object { class: usize, args: usize, state: Option<usize> },
    PersId(usize),
}

/// How deep [`load`] follows nested values before calling the pickle malformed (a reference cycle).
const MAX_DEPTH: usize = 512;
/// How many values the tree may hold: shared references are copied out, so a pickle that nests them can
/// describe more values than memory holds (a YOLOv5x checkpoint has about a million).
const MAX_VALUES: usize = 20_000_000;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    arena: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: HashMap<u32, usize>,
    produced: std::cell::Cell<usize>,
    max_values: usize,
}

/// Run the pickle in `data` and return the value it builds. Errors say which opcode at which byte failed.
pub fn load(data: &[u8]) -> Result<Value, String> {
    load_bounded(data, MAX_VALUES)
}

/// [`load`] with a bound on the values the tree may hold.
fn load_bounded(data: &[u8], max_values: usize) -> Result<Value, String> {
    let mut m = Machine {
        data,
        pos: 0,
        arena: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        produced: std::cell::Cell::new(0),
        max_values,
    };
    let top = m.run()?;
    m.tree(top, 0)
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| {
                format!("the pickle ends at byte {} inside an argument of {n} bytes", self.data.len())
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("a text argument has no end of line")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> Result<String, String> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
    }

    fn push(&mut self, node: Node) {
        self.arena.push(node);
        self.stack.push(self.arena.len() - 1);
    }

    fn leaf(&mut self, v: Value) {
        self.push(Node::Leaf(v));
    }

    fn pop(&mut self) -> Result<usize, String> {
        self.stack.pop().ok_or_else(|| "the stack is empty".to_string())
    }

    fn top(&self) -> Result<usize, String> {
        self.stack.last().copied().ok_or_else(|| "the stack is empty".to_string())
    }

    /// Everything above the last mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<usize>, String> {
        let m = self.marks.pop().ok_or("no mark on the stack")?;
        if m > self.stack.len() {
            return Err("a mark above the stack".into());
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_get(&mut self, k: u32) -> Result<(), String> {
        let i = *self.memo.get(&k).ok_or_else(|| format!("memo entry {k} was never stored"))?;
        self.stack.push(i);
        Ok(())
    }

    fn memo_put(&mut self, k: u32) -> Result<(), String> {
        let t = self.top()?;
        self.memo.insert(k, t);
        Ok(())
    }

    fn global_name(&self, i: usize) -> Option<String> {
        match &self.arena[i] {
            Node::Leaf(v @ Value::Global { .. }) => v.class_name(),
            _ => None,
        }
    }

    /// A call (`REDUCE`, `NEWOBJ`): the three constructors yolo-lab understands build containers.
    fn call(&mut self, class: usize, args: usize) {
        let name = self.global_name(class).unwrap_or_default();
        let node = match name.as_str() {
            "collections.OrderedDict" => Node::Dict(Vec::new()),
            "builtins.set" | "__builtin__.set" | "builtins.frozenset" | "__builtin__.frozenset" => {
                let items = match &self.arena[args] {
                    Node::Tuple(a) => a.first().and_then(|&l| match &self.arena[l] {
                        Node::List(v) | Node::Tuple(v) => Some(v.clone()),
                        _ => None,
                    }),
                    _ => None,
                };
                Node::List(items.unwrap_or_default())
            }
            _ => Node::Object { class, args, state: None },
        };
        self.push(node);
    }

    fn set_items(&mut self, target: usize, kv: &[usize]) -> Result<(), String> {
        if !kv.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of values".into());
        }
        let pairs = kv.chunks(2).map(|c| (c[0], c[1]));
        match &mut self.arena[target] {
            Node::Dict(d) => d.extend(pairs),
            // a dict subclass: keep the items as its state
            Node::Object { state, .. } => {
                let dict = match *state {
                    Some(s) => s,
                    None => {
                        self.arena.push(Node::Dict(Vec::new()));
                        let s = self.arena.len() - 1;
                        if let Node::Object { state, .. } = &mut self.arena[target] {
                            *state = Some(s);
                        }
                        s
                    }
                };
                match &mut self.arena[dict] {
                    Node::Dict(d) => d.extend(pairs),
                    _ => return Err("items set on an object whose state is not a dict".into()),
                }
            }
            _ => return Err("items set on a value that is not a dict".into()),
        }
        Ok(())
    }

    fn append(&mut self, target: usize, items: &[usize]) -> Result<(), String> {
        match &mut self.arena[target] {
            Node::List(l) => l.extend_from_slice(items),
            _ => return Err("items appended to a value that is not a list".into()),
        }
        Ok(())
    }

    fn run(&mut self) -> Result<usize, String> {
        loop {
            let at = self.pos;
            let op = self.u8().map_err(|_| format!("the pickle ends at byte {at} without STOP"))?;
            self.step(op).map_err(|e| format!("opcode 0x{op:02x} at byte {at}: {e}"))?;
            if op == b'.' {
                return self.pop();
            }
        }
    }

    fn step(&mut self, op: u8) -> Result<(), String> {
        match op {
            0x80 => {
                let proto = self.u8()?;
                if proto > 5 {
                    return Err(format!("pickle protocol {proto} is newer than 5"));
                }
            }
            0x95 => {
                self.u64()?; // FRAME: a length hint
            }
            b'.' => {} // STOP
            b'(' => self.marks.push(self.stack.len()),
            b'N' => self.leaf(Value::None),
            0x88 => self.leaf(Value::Bool(true)),
            0x89 => self.leaf(Value::Bool(false)),
            b'J' => {
                let v = self.u32()? as i32;
                self.leaf(Value::Int(v as i64))
            }
            b'K' => {
                let v = self.u8()?;
                self.leaf(Value::Int(v as i64))
            }
            b'M' => {
                let v = self.u16()?;
                self.leaf(Value::Int(v as i64))
            }
            b'I' => {
                let l = self.line()?;
                let v = match l.as_str() {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    s => Value::Int(s.parse().map_err(|_| format!("INT `{s}` is not an integer"))?),
                };
                self.leaf(v)
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a { self.u8()? as usize } else { self.u32()? as usize };
                let b = self.take(n)?;
                if n > 8 {
                    return Err(format!("an integer of {n} bytes does not fit in 64 bits"));
                }
                let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xff; 8] } else { [0; 8] };
                buf[..n].copy_from_slice(b);
                self.leaf(Value::Int(i64::from_le_bytes(buf)))
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                self.leaf(Value::Float(v))
            }
            b'F' => {
                let l = self.line()?;
                self.leaf(Value::Float(l.trim().parse().map_err(|_| format!("FLOAT `{l}` is not a number"))?))
            }
            0x8c => {
                let n = self.u8()? as usize;
                let s = self.text(n)?;
                self.leaf(Value::Str(s))
            }
            b'X' => {
                let n = self.u32()? as usize;
                let s = self.text(n)?;
                self.leaf(Value::Str(s))
            }
            0x8d => {
                let n = self.u64()? as usize;
                let s = self.text(n)?;
                self.leaf(Value::Str(s))
            }
            b'U' | b'C' => {
                let n = self.u8()? as usize;
                let b = self.take(n)?.to_vec();
                self.leaf(if op == b'U' {
                    Value::Str(String::from_utf8_lossy(&b).into_owned())
                } else {
                    Value::Bytes(b)
                })
            }
            b'T' | b'B' => {
                let n = self.u32()? as usize;
                let b = self.take(n)?.to_vec();
                self.leaf(if op == b'T' {
                    Value::Str(String::from_utf8_lossy(&b).into_owned())
                } else {
                    Value::Bytes(b)
                })
            }
            0x8e => {
                let n = self.u64()? as usize;
                let b = self.take(n)?.to_vec();
                self.leaf(Value::Bytes(b))
            }
            b'V' => {
                let l = self.line()?;
                self.leaf(Value::Str(l))
            }
            b')' => self.push(Node::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err(format!("TUPLE{n} needs {n} values on the stack"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(Node::Tuple(items))
            }
            b']' => self.push(Node::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items))
            }
            b'}' => self.push(Node::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Node::Dict(Vec::new()));
                let d = self.top()?;
                self.set_items(d, &items)?
            }
            0x8f => self.push(Node::List(Vec::new())), // EMPTY_SET
            0x90 => {
                // ADDITEMS
                let items = self.pop_mark()?;
                let t = self.top()?;
                self.append(t, &items)?
            }
            0x91 => {
                // FROZENSET
                let items = self.pop_mark()?;
                self.push(Node::List(items))
            }
            b'a' => {
                let v = self.pop()?;
                let t = self.top()?;
                self.append(t, &[v])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                let t = self.top()?;
                self.append(t, &items)?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let t = self.top()?;
                self.set_items(t, &[k, v])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                let t = self.top()?;
                self.set_items(t, &items)?
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let t = self.top()?;
                self.stack.push(t)
            }
            b'h' => {
                let k = self.u8()? as u32;
                self.memo_get(k)?
            }
            b'j' => {
                let k = self.u32()?;
                self.memo_get(k)?
            }
            b'g' => {
                let l = self.line()?;
                self.memo_get(l.trim().parse().map_err(|_| format!("GET `{l}` is not an index"))?)?
            }
            b'q' => {
                let k = self.u8()? as u32;
                self.memo_put(k)?
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k)?
            }
            b'p' => {
                let l = self.line()?;
                self.memo_put(l.trim().parse().map_err(|_| format!("PUT `{l}` is not an index"))?)?
            }
            0x94 => {
                let k = self.memo.len() as u32;
                self.memo_put(k)?
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.leaf(Value::Global { module, name })
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Node::Leaf(Value::Str(m)), Node::Leaf(Value::Str(n))) = (&self.arena[module], &self.arena[name])
                else {
                    return Err("STACK_GLOBAL needs two strings".into());
                };
                let v = Value::Global { module: m.clone(), name: n.clone() };
                self.leaf(v)
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let class = self.pop()?;
                self.call(class, args)
            }
            0x92 => {
                // NEWOBJ_EX: cls, args, kwargs
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                self.call(class, args)
            }
            b'b' => {
                let st = self.pop()?;
                let t = self.top()?;
                match &mut self.arena[t] {
                    Node::Object { state, .. } => *state = Some(st),
                    // OrderedDict's BUILD carries no items; a set's none either
                    Node::Dict(_) | Node::List(_) => {}
                    _ => return Err("BUILD on a value that is not an object".into()),
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                self.push(Node::PersId(pid))
            }
            b'P' => {
                let l = self.line()?;
                self.leaf(Value::Str(l));
                let pid = self.pop()?;
                self.push(Node::PersId(pid))
            }
            other => return Err(format!("opcode 0x{other:02x} is not one PyTorch writes")),
        }
        Ok(())
    }

    /// The value at `i` as a tree.
    fn tree(&self, i: usize, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH} levels (a reference cycle?)"));
        }
        self.produced.set(self.produced.get() + 1);
        if self.produced.get() > self.max_values {
            return Err(format!("the pickle's shared references expand to more than {} values", self.max_values));
        }
        let sub = |j: usize| self.tree(j, depth + 1);
        Ok(match &self.arena[i] {
            Node::Leaf(v) => v.clone(),
            Node::Tuple(v) => Value::Tuple(v.iter().map(|&j| sub(j)).collect::<Result<_, _>>()?),
            Node::List(v) => Value::List(v.iter().map(|&j| sub(j)).collect::<Result<_, _>>()?),
            Node::Dict(v) => {
                Value::Dict(v.iter().map(|&(k, x)| Ok((sub(k)?, sub(x)?))).collect::<Result<_, String>>()?)
            }
            Node::Object { class, args, state } => Value::Object {
                class: Box::new(sub(*class)?),
                args: Box::new(sub(*args)?),
                state: state.map(sub).transpose()?.map(Box::new),
            },
            Node::PersId(p) => Value::PersId(Box::new(sub(*p)?)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protocol-2 pickles written by CPython 3.11's `pickle.dumps(x, protocol=2)`.
    #[test]
    fn reads_what_python_writes() {
        // {'a': [1, 300, 70000, -2, 2**40], 'b': (1.5, None, True, False), 'c': 'héllo'}
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01M,\x01J\x70\x11\x01\x00J\xfe\xff\xff\xff\x8a\x06\x00\x00\x00\x00\x00\x01eX\x01\x00\x00\x00bq\x03(G?\xf8\x00\x00\x00\x00\x00\x00N\x88\x89tq\x04X\x01\x00\x00\x00cq\x05X\x06\x00\x00\x00h\xc3\xa9lloq\x06u.";
        let v = load(p).unwrap();
        let a: Vec<i64> = v.get("a").unwrap().as_seq().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        assert_eq!(a, [1, 300, 70000, -2, 1 << 40]);
        assert_eq!(
            v.get("b"),
            Some(&Value::Tuple(vec![Value::Float(1.5), Value::None, Value::Bool(true), Value::Bool(false)]))
        );
        assert_eq!(v.get("c").and_then(Value::as_str), Some("héllo"));
    }

    #[test]
    fn memoised_containers_are_seen_filled() {
        // d = {}; x = [d, d]; d['k'] = 1 -- as a pickle: the list holds the dict twice through the memo
        // ( ] q0 ( } q1 h1 e   then fill memo 1 )
        let p = b"\x80\x02]q\x00(}q\x01h\x01eh\x01X\x01\x00\x00\x00kK\x01s0.";
        let v = load(p).unwrap();
        let items = v.as_seq().unwrap();
        assert_eq!(items.len(), 2);
        for d in items {
            assert_eq!(d.get("k"), Some(&Value::Int(1)));
        }
    }

    #[test]
    fn objects_ordered_dicts_sets_and_persistent_ids() {
        // c__main__\nThing\n ) \x81 (NEWOBJ) } X'w' (c..OrderedDict ) R X'p' K7 s) s b  -- and a set, a pid
        let mut p: Vec<u8> = b"\x80\x02]q\x00(c__main__\nThing\nq\x01)\x81q\x02}q\x03X\x01\x00\x00\x00wccollections\nOrderedDict\nq\x04)Rq\x05X\x01\x00\x00\x00pK\x07ssb".to_vec();
        p.extend_from_slice(b"c__builtin__\nset\n]q\x06(K\x01K\x02e\x85Rq\x07");
        p.extend_from_slice(b"(X\x07\x00\x00\x00storageq\x08X\x01\x00\x00\x000tQ");
        p.extend_from_slice(b"e.");
        let v = load(&p).unwrap();
        let items = v.as_seq().unwrap();
        assert_eq!(items[0].class_name().as_deref(), Some("__main__.Thing"));
        let w = items[0].state().and_then(|s| s.get("w")).unwrap();
        assert_eq!(w.get("p"), Some(&Value::Int(7)));
        assert_eq!(items[1], Value::List(vec![Value::Int(1), Value::Int(2)]));
        assert_eq!(
            items[2],
            Value::PersId(Box::new(Value::Tuple(vec![Value::Str("storage".into()), Value::Str("0".into())])))
        );
    }

    #[test]
    fn references_that_expand_without_bound_are_refused() {
        // l0 = []; l(k+1) = [lk, lk]: 40 levels describe 2^40 values in 200 bytes
        let mut p = b"\x80\x02]q\x00".to_vec();
        for k in 0..40u8 {
            p.extend_from_slice(&[b'(', b'h', k, b'h', k, b'l', b'q', k + 1]);
        }
        p.push(b'.');
        let e = load_bounded(&p, 100_000).unwrap_err();
        assert!(e.contains("expand to more than 100000 values"), "{e}");
    }

    #[test]
    fn malformed_pickles_are_errors_naming_the_byte() {
        for (p, want) in [
            (&b"\x80\x02]q\x00"[..], "without STOP"),
            (&b"\x80\x02X\xff\x00\x00\x00ab."[..], "ends at byte"),
            (&b"\x80\x02h\x05."[..], "memo entry 5"),
            (&b"\x80\x02e."[..], "no mark"),
            (&b"\x80\x02\xff."[..], "opcode 0xff at byte 2"),
            (&b"\x80\x09."[..], "protocol 9"),
            (&b"."[..], "stack is empty"),
        ] {
            let e = load(p).unwrap_err();
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
    }
}
