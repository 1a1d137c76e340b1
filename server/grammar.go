package server

// jsonObjectGrammar is the GBNF grammar of response_format json_object:
// one JSON object (RFC 8259), with whitespace between tokens bounded so
// that a model cannot pad the output forever. After the closing brace the
// grammar is complete and only an end-of-generation token may follow.
//
// Strings allow any character but the quote, the backslash and control
// characters, plus the escapes JSON defines; numbers are JSON numbers with
// at most 16 integer digits.
const jsonObjectGrammar = `root    ::= object
value   ::= object | array | string | number | "true" | "false" | "null"
object  ::= "{" sp ( member ( "," sp member )* )? "}"
member  ::= string sp ":" sp value sp
array   ::= "[" sp ( value sp ( "," sp value sp )* )? "]"
string  ::= "\"" char* "\""
char    ::= [^"\\\x7F\x00-\x1F] | "\\" escape
escape  ::= ["\\/bfnrt] | "u" hex hex hex hex
hex     ::= [0-9a-fA-F]
number  ::= "-"? integer fraction? exponent?
integer ::= "0" | [1-9] [0-9]{0,15}
fraction ::= "." [0-9]+
exponent ::= [eE] [-+]? [0-9]{1,3}
sp      ::= ( " " | "\n" [ \t]{0,16} )?
`
