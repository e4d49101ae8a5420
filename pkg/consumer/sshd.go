package consumer

import (
	"path"
	"strings"
)

// sshdConsumer parses sshd_config(5).
//
// Each non-comment line is "Keyword value" or "Keyword=value". Keywords are
// case-insensitive and normalized to sshd's canonical spelling; unknown
// keywords are reported as Problems (sshd refuses them) and kept in lower
// case. As in sshd, the first value of a single-valued keyword wins (later
// ones are reported as Problems and ignored); list keywords (AllowUsers,
// DenyUsers, AllowGroups, DenyGroups, AcceptEnv, HostKey, HostCertificate,
// ListenAddress, Port, SetEnv) accumulate, joined with a space; Subsystem is
// keyed by subsystem name ("Subsystem sftp"). Options after a "Match ..."
// line are named "Match <criteria>/Keyword", criteria whitespace-normalized.
// Include directives become includes (relative paths resolved against
// /etc/ssh, as sshd does), not options. Values are whitespace-normalized.
type sshdConsumer struct{}

type sshdOption struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Line  int    `json:"line"`
}

type sshdState struct {
	stateHeader
	Options  []sshdOption   `json:"options"`
	Includes []includeEntry `json:"includes"`
}

// Kind implements Consumer.
func (sshdConsumer) Kind() Kind { return KindSSHDConfig }

// sshdDir is where sshd resolves relative Include paths.
const sshdDir = "/etc/ssh"

var sshdKeywords = func() map[string]string {
	m := map[string]string{}
	for _, k := range strings.Fields(`AcceptEnv AddressFamily AllowAgentForwarding AllowGroups
	AllowStreamLocalForwarding AllowTcpForwarding AllowUsers AuthenticationMethods AuthorizedKeysCommand
	AuthorizedKeysCommandUser AuthorizedKeysFile AuthorizedPrincipalsCommand AuthorizedPrincipalsCommandUser
	AuthorizedPrincipalsFile Banner CASignatureAlgorithms ChallengeResponseAuthentication ChannelTimeout
	ChrootDirectory Ciphers ClientAliveCountMax ClientAliveInterval Compression DebianBanner DenyGroups DenyUsers
	DisableForwarding DSAAuthentication ExposeAuthInfo FingerprintHash ForceCommand GatewayPorts
	GSSAPIAuthentication GSSAPICleanupCredentials GSSAPIKexAlgorithms GSSAPIKeyExchange
	GSSAPIStoreCredentialsOnRekey GSSAPIStrictAcceptorCheck HostbasedAcceptedAlgorithms
	HostbasedAcceptedKeyTypes HostbasedAuthentication HostbasedUsesNameFromPacketOnly HostCertificate HostKey
	HostKeyAgent HostKeyAlgorithms IgnoreRhosts IgnoreUserKnownHosts Include IPQoS KbdInteractiveAuthentication
	KerberosAuthentication KerberosGetAFSToken KerberosOrLocalPasswd KerberosTicketCleanup KexAlgorithms
	KeyRegenerationInterval ListenAddress LoginGraceTime LogLevel LogVerbose MACs Match MaxAuthTries MaxSessions
	MaxStartups ModuliFile PasswordAuthentication PermitEmptyPasswords PermitListen PermitOpen PermitRootLogin
	PermitTTY PermitTunnel PermitUserEnvironment PermitUserRC PerSourceMaxStartups PerSourceNetBlockSize
	PerSourcePenalties PerSourcePenaltyExemptList PidFile Port PrintLastLog PrintMotd Protocol
	PubkeyAcceptedAlgorithms PubkeyAcceptedKeyTypes PubkeyAuthentication PubkeyAuthOptions RDomain
	RefuseConnection RekeyLimit RequiredRSASize RevokedKeys RhostsRSAAuthentication RSAAuthentication
	SecurityKeyProvider ServerKeyBits SetEnv SKeyAuthentication SrcAddress StreamLocalBindMask
	StreamLocalBindUnlink StrictModes Subsystem SyslogFacility TCPKeepAlive TrustedUserCAKeys
	UnusedConnectionTimeout UseDNS UseLogin UsePAM UsePrivilegeSeparation VersionAddendum X11DisplayOffset
	X11Forwarding X11MaxDisplays X11UseLocalhost XAuthLocation`) {
		m[strings.ToLower(k)] = k
	}
	return m
}()

var sshdMulti = map[string]bool{
	"AcceptEnv": true, "AllowGroups": true, "AllowUsers": true, "DenyGroups": true, "DenyUsers": true,
	"HostKey": true, "HostCertificate": true, "ListenAddress": true, "Port": true, "SetEnv": true,
}

// sshdRisky maps a canonical keyword to the lower-case value that deserves a flag.
var sshdRisky = map[string]struct{ value, flag string }{
	"PermitRootLogin":        {"yes", "root-login"},
	"PasswordAuthentication": {"yes", "password-auth"},
	"PermitEmptyPasswords":   {"yes", "empty-passwords"},
}

// splitKeyword splits "Keyword value", "Keyword=value" or "Keyword = value".
func splitKeyword(s string) (kw, val string) {
	i := strings.IndexAny(s, " \t=")
	if i < 0 {
		return s, ""
	}
	kw, val = s[:i], strings.TrimLeft(s[i:], " \t")
	if strings.HasPrefix(val, "=") {
		val = strings.TrimLeft(val[1:], " \t")
	}
	return kw, strings.Join(strings.Fields(val), " ")
}

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (sshdConsumer) Parse(in Input) (State, []Problem, error) {
	st := &sshdState{Options: []sshdOption{}, Includes: []includeEntry{}}
	if in.Content == nil {
		return absentState(marshalState(KindSSHDConfig, true, st))
	}
	var probs problems
	index := map[string]int{} // option name -> index in st.Options
	ctx := ""
	for _, l := range entries(in.Content) {
		probs.checkUTF8(l)
		kw, val := splitKeyword(strings.TrimSpace(l.text))
		canon, known := sshdKeywords[strings.ToLower(kw)]
		if !known {
			canon = strings.ToLower(kw)
			probs.add(l.num, "unknown keyword (sshd would refuse the file)")
		}
		if val == "" {
			if known {
				probs.add(l.num, "%s without a value; ignored", canon)
			} else {
				probs.add(l.num, "keyword without a value; ignored")
			}
			continue
		}
		switch canon {
		case "Match":
			ctx = "Match " + val + "/"
			continue
		case "Include":
			for _, p := range strings.Fields(val) {
				p = strings.Trim(p, `"`)
				res := p
				if !path.IsAbs(p) && !strings.HasPrefix(p, "~") {
					res = path.Join(sshdDir, p)
				}
				st.Includes = append(st.Includes, includeEntry{Directive: "Include", Path: p, Resolved: res, Line: l.num})
			}
			continue
		}
		name := ctx + canon
		if canon == "Subsystem" {
			sub, _, _ := strings.Cut(val, " ")
			name += " " + sub
		}
		if i, ok := index[name]; ok {
			if sshdMulti[canon] {
				st.Options[i].Value += " " + val
			} else {
				probs.add(l.num, "%s repeated; ignored (the first value wins)", canon)
			}
			continue
		}
		index[name] = len(st.Options)
		st.Options = append(st.Options, sshdOption{Name: name, Value: val, Line: l.num})
	}
	s, err := marshalState(KindSSHDConfig, false, st)
	return s, probs, err
}

// sshdFlags flags a risky effective value of an option.
func sshdFlags(name, value string) []string {
	kw := name[strings.LastIndexByte(name, '/')+1:]
	if r, ok := sshdRisky[kw]; ok && strings.EqualFold(value, r.value) {
		return []string{r.flag}
	}
	return nil
}

// Diff implements Consumer (see the package documentation for absent files).
func (sshdConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[sshdState](KindSSHDConfig, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	var out []Change
	pairByKey(p.Options, s.Options, func(o *sshdOption) string { return o.Name }, func(po, o *sshdOption) {
		switch {
		case po == nil:
			out = append(out, Change{Type: ChangeOptionAdded, Name: o.Name, New: map[string]string{"value": o.Value}, Flags: sshdFlags(o.Name, o.Value), Line: o.Line})
		case po.Value != o.Value:
			out = append(out, Change{Type: ChangeOptionChanged, Name: o.Name, Old: map[string]string{"value": po.Value}, New: map[string]string{"value": o.Value}, Flags: sshdFlags(o.Name, o.Value), Line: o.Line})
		}
	}, func(o *sshdOption) {
		out = append(out, Change{Type: ChangeOptionRemoved, Name: o.Name, Old: map[string]string{"value": o.Value}, Line: o.Line})
	})
	return append(out, diffIncludes(p.Includes, s.Includes)...), nil
}
