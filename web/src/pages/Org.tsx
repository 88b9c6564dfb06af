import { useState, type FormEvent } from "react";
import { fieldError, fieldOf } from "../api/errors";
import {
  useChangeRole,
  useCreateOrg,
  useInvitations,
  useInvite,
  useMembers,
  useRemoveMember,
  useRevokeInvitation,
} from "../api/hooks";
import type { Member, Role } from "../api/types";
import { useSession } from "../api/useSession";
import { CopyButton } from "../components/CopyButton";
import { ErrorMessage } from "../components/ErrorMessage";
import { Field } from "../components/Field";
import { Loading } from "../components/Loading";
import { date } from "../lib/format";
import { roleAtLeast, useOrg } from "../lib/org";

const ROLES: Role[] = ["owner", "admin", "member", "viewer"];

/** The roles the current user may hand out (owners alone manage owners). */
function assignable(isOwner: boolean): Role[] {
  return isOwner ? ROLES : ROLES.filter((r) => r !== "owner");
}

function MemberRow({ orgId, member, canManage, isOwner, isSelf }: {
  orgId: string; member: Member; canManage: boolean; isOwner: boolean; isSelf: boolean;
}) {
  const change = useChangeRole(orgId);
  const remove = useRemoveMember(orgId);
  const [confirming, setConfirming] = useState(false);
  // Admins cannot touch owners; nobody changes themselves here.
  const editable = canManage && !isSelf && (isOwner || member.role !== "owner");
  const who = member.name || member.email;
  return (
    <tr>
      <td data-label="Member">
        {member.name && <strong>{member.name} </strong>}
        <span className="muted">{member.email}</span>
        {isSelf && <span className="badge">You</span>}
      </td>
      <td data-label="Role">
        {editable ? (
          <select aria-label={`Role of ${who}`} value={member.role} disabled={change.isPending}
            onChange={(e) => change.mutate({ userId: member.user_id, role: e.target.value as Role })}>
            {assignable(isOwner).map((r) => <option key={r} value={r}>{r}</option>)}
          </select>
        ) : (
          member.role
        )}
        {change.error != null && <ErrorMessage error={change.error} compact />}
      </td>
      <td data-label="Joined">{date(member.joined_at)}</td>
      <td data-label="Actions">
        {editable &&
          (confirming ? (
            <span className="row">
              <button type="button" className="button-danger small" disabled={remove.isPending}
                onClick={() => remove.mutate(member.user_id)}>Confirm remove</button>
              <button type="button" className="button-secondary small" onClick={() => setConfirming(false)}>Cancel</button>
            </span>
          ) : (
            <button type="button" className="button-secondary small" aria-label={`Remove ${who}`}
              onClick={() => setConfirming(true)}>Remove</button>
          ))}
        {remove.error != null && <ErrorMessage error={remove.error} compact />}
      </td>
    </tr>
  );
}

function InviteForm({ orgId, isOwner }: { orgId: string; isOwner: boolean }) {
  const invite = useInvite(orgId);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [sent, setSent] = useState<{ email: string; url: string } | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setSent(null);
    invite.mutate({ email, role }, {
      onSuccess: (created) => {
        setSent({ email: created.email, url: created.url });
        setEmail("");
      },
    });
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-label="Invite a member" noValidate>
      <h2>Invite a member</h2>
      <Field label="Email address" type="email" value={email} required onChange={(e) => setEmail(e.target.value)}
        error={fieldError(invite.error, "email")} />
      <div className="field">
        <label htmlFor="invite-role">Role</label>
        <select id="invite-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {assignable(isOwner).map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
      </div>
      <button type="submit" disabled={invite.isPending}>{invite.isPending ? "Sending…" : "Send invitation"}</button>
      {invite.error != null && fieldOf(invite.error) !== "email" && <ErrorMessage error={invite.error} compact />}
      {sent && (
        <div role="status" className="success invite-sent">
          <p>Invitation sent to {sent.email}.</p>
          <p className="muted">
            Or share the link yourself: <a href={sent.url} aria-label="Invitation link">{sent.url}</a>
          </p>
          <CopyButton text={sent.url} label="Copy invitation link" />
        </div>
      )}
    </form>
  );
}

function Invitations({ orgId }: { orgId: string }) {
  const invitations = useInvitations(orgId, true);
  const revoke = useRevokeInvitation(orgId);
  if (invitations.isPending) return <Loading />;
  if (invitations.error) return <ErrorMessage error={invitations.error} onRetry={() => void invitations.refetch()} />;
  const pending = invitations.data.data.filter((i) => i.status === "pending");
  return (
    <section aria-labelledby="invitations-title">
      <h2 id="invitations-title">Pending invitations</h2>
      {pending.length === 0 ? (
        <p className="muted">No pending invitations.</p>
      ) : (
        <table className="table">
          <thead><tr><th>Email</th><th>Role</th><th>Expires</th><th>Actions</th></tr></thead>
          <tbody>
            {pending.map((i) => (
              <tr key={i.id}>
                <td data-label="Email">{i.email}</td>
                <td data-label="Role">{i.role}</td>
                <td data-label="Expires">{date(i.expires_at)}</td>
                <td data-label="Actions">
                  <button type="button" className="button-secondary small" aria-label={`Revoke invitation for ${i.email}`}
                    disabled={revoke.isPending} onClick={() => revoke.mutate(i.id)}>Revoke</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {revoke.error != null && <ErrorMessage error={revoke.error} compact />}
    </section>
  );
}

/** A new organisation, of which the user becomes the owner; the app switches to it. */
function CreateOrgForm({ onCreated }: { onCreated: (id: string) => void }) {
  const create = useCreateOrg();
  const [name, setName] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name }, {
      onSuccess: (org) => {
        setName("");
        onCreated(org.id);
      },
    });
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-label="Create an organisation" noValidate>
      <h2>Create an organisation</h2>
      <Field label="Organisation name" value={name} required onChange={(e) => setName(e.target.value)}
        error={fieldError(create.error, "name")} />
      <button type="submit" disabled={create.isPending}>{create.isPending ? "Creating…" : "Create"}</button>
      {create.error != null && fieldOf(create.error) !== "name" && <ErrorMessage error={create.error} compact />}
    </form>
  );
}

export function OrgPage() {
  const { org, orgs, switchOrg, loading, error } = useOrg();
  const { user } = useSession();
  const members = useMembers(org?.id ?? null);
  if (loading) return <Loading />;
  if (error) return <ErrorMessage error={error} />;
  if (!org) return <p>You belong to no organisation.</p>;
  const canManage = roleAtLeast(org, "admin");
  const isOwner = org.role === "owner";
  return (
    <div className="page">
      <div className="page-header">
        <h1>{org.name}</h1>
        <span className="badge">Your role: {org.role}</span>
      </div>
      {orgs.length > 1 && (
        <div className="field inline">
          <label htmlFor="org-page-switch">Switch organisation</label>
          <select id="org-page-switch" value={org.id} onChange={(e) => switchOrg(e.target.value)}>
            {orgs.map((o) => <option key={o.id} value={o.id}>{o.name}</option>)}
          </select>
        </div>
      )}
      <section aria-labelledby="members-title">
        <h2 id="members-title">Members</h2>
        {members.isPending ? (
          <Loading />
        ) : members.error ? (
          <ErrorMessage error={members.error} onRetry={() => void members.refetch()} />
        ) : (
          <table className="table">
            <thead><tr><th>Member</th><th>Role</th><th>Joined</th><th>Actions</th></tr></thead>
            <tbody>
              {members.data.data.map((m) => (
                <MemberRow key={m.user_id} orgId={org.id} member={m} canManage={canManage} isOwner={isOwner}
                  isSelf={m.user_id === user?.id} />
              ))}
            </tbody>
          </table>
        )}
      </section>
      {canManage ? (
        <>
          <InviteForm orgId={org.id} isOwner={isOwner} />
          <Invitations orgId={org.id} />
        </>
      ) : (
        <p className="note">Only admins and owners can invite or manage members.</p>
      )}
      <CreateOrgForm onCreated={switchOrg} />
    </div>
  );
}
