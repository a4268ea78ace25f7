// Search patterns typed by a user (run filter `bf`, series search `q`, runs filter `rf`):
// a regular-expression subset matched in time linear in the text, whatever the pattern.
// A backtracking RegExp freezes the tab on `(a+)+$`, and patterns travel in shared links.
// This is the same algorithm as kohakuboard/viewer/pattern.py (a Thompson NFA simulated one
// character at a time, the program size capped); both are checked against
// tests/viewer/pattern_cases.json. The syntax is in docs/viewer.md ("Search patterns").

export const MAX_PATTERN = 256 // characters (code points)
export const MAX_REPEAT = 100 // the largest n or m in {n,m}
export const MAX_PROGRAM = 2000 // NFA instructions

const DIGIT = new Set('0123456789')
const WORD = new Set('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_')
const SPACE = new Set(' \t\n\r\f\v')
const CLASS_ESCAPES = { d: DIGIT, w: WORD, s: SPACE }
const CHAR_ESCAPES = { t: '\t', n: '\n', r: '\r' }
const ASCII_ALNUM = /^[A-Za-z0-9]$/

class PatternError extends Error {}

// ch and its one-character lower and upper case forms
function variants(ch) {
  const out = [ch]
  for (const other of [ch.toLowerCase(), ch.toUpperCase()]) {
    if ([...other].length === 1 && !out.includes(other)) out.push(other)
  }
  return out
}

// {chars: Set, ranges: [[lo, hi]], classes: [[Set, negated]], negated}
function charSet({ chars = new Set(), ranges = [], classes = [], negated = false } = {}) {
  const has = (ch) => {
    if (chars.has(ch)) return true
    const code = ch.codePointAt(0)
    if (ranges.some(([lo, hi]) => lo <= code && code <= hi)) return true
    return classes.some(([members, neg]) => members.has(ch) !== neg)
  }
  // forms: a character's case forms (variants), computed once per character of the text
  const matches = (forms) => forms.some(has) !== negated
  return { chars, ranges, classes, negated, matches }
}

const literal = (ch) => charSet({ chars: new Set([ch]) })

class Parser {
  constructor(pattern) {
    this.chars = Array.from(pattern)
    this.pos = 0
  }

  peek(ahead = 0) {
    const i = this.pos + ahead
    return i < this.chars.length ? this.chars[i] : null
  }

  take() {
    return this.chars[this.pos++]
  }

  parse() {
    const node = this.alternation()
    if (this.pos !== this.chars.length) throw new PatternError(`unmatched ')' at ${this.pos}`)
    return node
  }

  alternation() {
    const branches = [this.sequence()]
    while (this.peek() === '|') {
      this.take()
      branches.push(this.sequence())
    }
    return branches.length === 1 ? branches[0] : { kind: 'alt', branches }
  }

  sequence() {
    const items = []
    let ch
    while ((ch = this.peek()) !== null && ch !== '|' && ch !== ')') {
      items.push(this.quantified(this.atom()))
    }
    return { kind: 'cat', items }
  }

  quantified(atom) {
    const bounds = this.quantifier()
    if (bounds === null) return atom
    if (atom.kind === 'bol' || atom.kind === 'eol') throw new PatternError('an anchor cannot be repeated')
    if (this.peek() === '?') this.take() // lazy: the same yes/no answer
    const ch = this.peek()
    if ((ch !== null && '*+?'.includes(ch)) || this.countedAt(this.pos)) {
      throw new PatternError(`a quantifier follows a quantifier at ${this.pos}`)
    }
    return { kind: 'rep', inner: atom, lo: bounds[0], hi: bounds[1] }
  }

  quantifier() {
    const ch = this.peek()
    if (ch === '*') return this.take() && [0, null]
    if (ch === '+') return this.take() && [1, null]
    if (ch === '?') return this.take() && [0, 1]
    if (ch === '{') return this.counted()
    return null
  }

  // {n}, {n,} or {n,m} (consumed); anything else is a literal "{" (null)
  counted() {
    const start = this.pos
    this.take()
    const lo = this.number()
    if (lo === null) {
      this.pos = start
      return null
    }
    let hi = lo
    if (this.peek() === ',') {
      this.take()
      hi = this.number()
    }
    if (this.peek() !== '}') {
      this.pos = start
      return null
    }
    this.take()
    if (hi !== null && hi < lo) throw new PatternError(`{${lo},${hi}}: the numbers are out of order`)
    if (lo > MAX_REPEAT || (hi !== null && hi > MAX_REPEAT)) throw new PatternError(`a count over ${MAX_REPEAT}`)
    return [lo, hi]
  }

  countedAt(index) {
    if (this.chars[index] !== '{') return false
    const save = this.pos
    this.pos = index
    try {
      return this.counted() !== null
    } finally {
      this.pos = save
    }
  }

  number() {
    let digits = ''
    let ch
    while ((ch = this.peek()) !== null && DIGIT.has(ch)) digits += this.take()
    return digits ? Number.parseInt(digits, 10) : null
  }

  atom() {
    const ch = this.take()
    if ('*+?'.includes(ch)) throw new PatternError(`'${ch}' has nothing to repeat`)
    if (ch === '{' && this.countedAt(this.pos - 1)) throw new PatternError("'{' has nothing to repeat")
    if (ch === '(') {
      if (this.peek() === '?') {
        if (this.peek(1) !== ':') throw new PatternError('only (?:...) groups are supported')
        this.pos += 2
      }
      const inner = this.alternation()
      if (this.peek() !== ')') throw new PatternError("unclosed '('")
      this.take()
      return inner
    }
    if (ch === '[') return { kind: 'char', set: this.charClass() }
    if (ch === '\\') {
      const found = this.escape()
      return { kind: 'char', set: typeof found === 'string' ? literal(found) : found }
    }
    if (ch === '^') return { kind: 'bol' }
    if (ch === '$') return { kind: 'eol' }
    if (ch === '.') return { kind: 'char', set: charSet({ negated: true }) }
    return { kind: 'char', set: literal(ch) }
  }

  // after a backslash: one literal character, or a class such as \d
  escape() {
    const ch = this.peek()
    if (ch === null) throw new PatternError("the pattern ends with '\\'")
    this.take()
    const lower = ch.toLowerCase()
    if (ASCII_ALNUM.test(ch) && CLASS_ESCAPES[lower]) {
      return charSet({ classes: [[CLASS_ESCAPES[lower], ch !== lower]] })
    }
    if (CHAR_ESCAPES[ch]) return CHAR_ESCAPES[ch]
    if (ASCII_ALNUM.test(ch)) throw new PatternError(`'\\${ch}' is not supported`)
    return ch
  }

  // after "[": up to the closing "]" ([] matches nothing, [^] anything)
  charClass() {
    const negated = this.peek() === '^'
    if (negated) this.take()
    const chars = new Set()
    const ranges = []
    const classes = []
    for (;;) {
      const ch = this.peek()
      if (ch === null) throw new PatternError("unclosed '['")
      if (ch === ']') {
        this.take()
        return charSet({ chars, ranges, classes, negated })
      }
      const low = this.classAtom()
      if (typeof low !== 'string') {
        classes.push(...low.classes)
      } else if (this.peek() === '-' && this.peek(1) !== null && this.peek(1) !== ']') {
        this.take()
        const high = this.classAtom()
        if (typeof high !== 'string') throw new PatternError('a range ends in a class such as \\d')
        if (high.codePointAt(0) < low.codePointAt(0)) throw new PatternError(`the range ${low}-${high} is out of order`)
        ranges.push([low.codePointAt(0), high.codePointAt(0)])
      } else {
        chars.add(low)
      }
    }
  }

  classAtom() {
    const ch = this.take()
    return ch === '\\' ? this.escape() : ch
  }
}

// the program: [{op: 'char', set} | {op: 'split', a, b} | {op: 'jmp', a} | {op: 'bol'} |
// {op: 'eol'} | {op: 'match'}]
class Compiler {
  constructor() {
    this.prog = []
  }

  emit(instr) {
    if (this.prog.length >= MAX_PROGRAM) throw new PatternError(`the pattern needs over ${MAX_PROGRAM} steps`)
    this.prog.push(instr)
    return this.prog.length - 1
  }

  node(node) {
    switch (node.kind) {
      case 'char':
        this.emit({ op: 'char', set: node.set })
        break
      case 'bol':
      case 'eol':
        this.emit({ op: node.kind })
        break
      case 'cat':
        for (const item of node.items) this.node(item)
        break
      case 'alt': {
        const jumps = []
        for (const branch of node.branches.slice(0, -1)) {
          const split = this.emit({ op: 'split', a: 0, b: 0 })
          this.prog[split].a = this.prog.length
          this.node(branch)
          jumps.push(this.emit({ op: 'jmp', a: 0 }))
          this.prog[split].b = this.prog.length
        }
        this.node(node.branches[node.branches.length - 1])
        for (const j of jumps) this.prog[j].a = this.prog.length
        break
      }
      default:
        this.repeat(node.inner, node.lo, node.hi)
    }
  }

  repeat(inner, lo, hi) {
    for (let i = 0; i < lo; i++) this.node(inner)
    if (hi === null) {
      const split = this.emit({ op: 'split', a: 0, b: 0 })
      this.prog[split].a = this.prog.length
      this.node(inner)
      this.emit({ op: 'jmp', a: split })
      this.prog[split].b = this.prog.length
      return
    }
    const exits = []
    for (let i = 0; i < hi - lo; i++) {
      const split = this.emit({ op: 'split', a: 0, b: 0 })
      this.prog[split].a = this.prog.length
      exits.push(split)
      this.node(inner)
    }
    for (const split of exits) this.prog[split].b = this.prog.length
  }
}

export function compilePattern(pattern) {
  if (Array.from(pattern).length > MAX_PATTERN) throw new PatternError(`the pattern is over ${MAX_PATTERN} characters`)
  const tree = new Parser(pattern).parse()
  const compiler = new Compiler()
  compiler.node(tree)
  compiler.emit({ op: 'match' })
  return compiler.prog
}

const MAX_CACHED_STEPS = 4096 // remembered transitions per matcher (then forgotten and rebuilt)
const MATCHED = null // the state set of a step that reached the match state

// The character-consuming states reached from `starts` by following jumps (^ holds when
// atStart, $ when atEnd); MATCHED if the match state is.
function closure(prog, starts, atStart, atEnd) {
  const out = []
  const seen = new Set()
  const stack = starts.slice().reverse()
  while (stack.length) {
    const at = stack.pop()
    if (seen.has(at)) continue
    seen.add(at)
    const instr = prog[at]
    switch (instr.op) {
      case 'match':
        return MATCHED
      case 'jmp':
        stack.push(instr.a)
        break
      case 'split':
        stack.push(instr.b, instr.a)
        break
      case 'bol':
        if (atStart) stack.push(at + 1)
        break
      case 'eol':
        if (atEnd) stack.push(at + 1)
        break
      default:
        out.push(at)
    }
  }
  return out
}

// Simulates the NFA on a text: the set of live states advances one character at a time (at
// most one visit per state and character). Each transition (states, character) is
// remembered, so a text over a small alphabet mostly costs one lookup per character.
function searcher(prog) {
  const steps = new Map()
  const step = (current, ch, atEnd) => {
    const key = current.join(',') + '|' + (atEnd ? '$' : '') + '|' + ch
    let found = steps.get(key)
    if (found === undefined) {
      const forms = variants(ch)
      const moved = current.filter((pc) => prog[pc].set.matches(forms)).map((pc) => pc + 1)
      found = closure(prog, [...moved, 0], false, atEnd) // 0: a match may start here
      if (steps.size >= MAX_CACHED_STEPS) steps.clear()
      steps.set(key, found)
    }
    return found
  }
  return (text) => {
    const chars = Array.from(text)
    const n = chars.length
    let current = closure(prog, [0], true, n === 0)
    for (let i = 0; i < n; i++) {
      if (current === MATCHED) return true
      current = step(current, chars[i], i + 1 === n)
    }
    return current === MATCHED
  }
}

// A matcher for a user-typed pattern: {test(text), valid, reason}. A pattern outside the
// subset is searched as plain text, ignoring case (valid: false; reason says why).
export function matcher(pattern) {
  if (!pattern) return { test: () => true, valid: true, reason: '' }
  let prog
  try {
    prog = compilePattern(pattern)
  } catch (err) {
    if (!(err instanceof PatternError)) throw err
    const needle = pattern.toLowerCase()
    return { test: (s) => s.toLowerCase().includes(needle), valid: false, reason: err.message }
  }
  return { test: searcher(prog), valid: true, reason: '' }
}
