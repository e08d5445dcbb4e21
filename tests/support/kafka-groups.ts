import { AssignerProtocol, type Admin } from 'kafkajs';
import { waitFor } from './processes.js';

export interface GroupMember {
  memberId: string;
  clientId: string;
  /** Partitions assigned to the member, per topic, in ascending order. */
  assignment: Record<string, number[]>;
}

/**
 * The consumer group once it is Stable with exactly `members` members, each with partitions
 * assigned: every member's GROUP_JOIN, seen from outside the processes that run them. Tests wait
 * on this instead of a log line or a sleep.
 */
export async function waitGroupStable(admin: Admin, groupId: string, members: number, timeoutMs = 60_000): Promise<GroupMember[]> {
  return waitFor(`${groupId} stable with ${members} member(s), each assigned partitions`, async () => {
    const [group] = (await admin.describeGroups([groupId])).groups;
    if (group?.state !== 'Stable' || group.members.length !== members) return false;
    const described = group.members.map((m) => ({
      memberId: m.memberId,
      clientId: m.clientId,
      assignment: Object.fromEntries(Object.entries(AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {})
        .map(([topic, partitions]) => [topic, [...partitions].sort((a, b) => a - b)])),
    }));
    return described.every((m) => Object.values(m.assignment).some((partitions) => partitions.length > 0)) && described;
  }, timeoutMs);
}
